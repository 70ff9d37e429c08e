"""A player's score through time, as the geometry of a server-rendered SVG (no script, no download).

One column per recorded change, oldest on the left: a line through the scores on the 0..100 scale
with the band thresholds drawn across, and under it one bar per factor, up when the factor raises
the risk and down when it lowers it, scaled to the largest factor shown. The admin renders it with
``admin/bettorsense/playerriskprofile/score_chart.html``; only SVG presentation attributes are
used, so a Content-Security-Policy without ``unsafe-inline`` styles still shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bettorsense import factors
from bettorsense.models import RiskProfileChange
from bettorsense.profiles import RiskBand

WIDTH: Final = 720
LEFT: Final = 40
RIGHT: Final = 16
SCORE_TOP: Final = 16
SCORE_BOTTOM: Final = 156
FACTOR_TOP: Final = 186
FACTOR_BOTTOM: Final = 276
HEIGHT: Final = 300
MAX_POINTS: Final = 60
# Okabe-Ito: told apart with the common colour-vision deficiencies.
PALETTE: Final = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
BAND_COLOURS: Final = {
    RiskBand.NO_RISK: "#417690",
    RiskBand.LOW: "#79aec8",
    RiskBand.MEDIUM: "#e6a117",
    RiskBand.HIGH: "#d55e00",
    RiskBand.VERY_HIGH: "#ba2121",
}
THRESHOLDS: Final = (50, 68, 95, 99)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str
    title: str
    label: str  # the date under the column, or "" where labels would crowd


@dataclass(frozen=True)
class Guide:
    y: float
    label: str
    dy: int  # the label's baseline offset: 95 and 99 sit close, so one goes above its line, one below


@dataclass(frozen=True)
class LegendEntry:
    colour: str
    name: str


@dataclass(frozen=True)
class ScoreChart:
    width: int
    height: int
    points: tuple[Point, ...]
    line: str  # the polyline's points attribute
    bars: tuple[Bar, ...]
    guides: tuple[Guide, ...]
    legend: tuple[LegendEntry, ...]
    zero_y: float
    factor_top: int
    factor_bottom: int
    left: int
    right_edge: int
    shown: int
    total: int


def _score_y(score: float) -> float:
    clamped = min(100.0, max(0.0, score))
    return round(SCORE_BOTTOM - (SCORE_BOTTOM - SCORE_TOP) * clamped / 100, 1)


def score_chart(changes: Sequence[RiskProfileChange], total: int | None = None) -> ScoreChart | None:
    """The chart of ``changes`` (oldest first; the last MAX_POINTS are drawn); None when there are none."""
    shown = list(changes)[-MAX_POINTS:]
    if not shown:
        return None
    read = [factors.from_json(change.category_scores) for change in shown]
    keys = sorted({c.key for scores in read for c in scores})
    names = {c.key: c.name for scores in read for c in scores}
    colours = {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}
    widest = max((abs(c.score) for scores in read for c in scores), default=0.0) or 1.0
    slot = (WIDTH - LEFT - RIGHT) / len(shown)
    zero_y = (FACTOR_TOP + FACTOR_BOTTOM) / 2
    half = (FACTOR_BOTTOM - FACTOR_TOP) / 2
    bar_width = min(6.0, slot * 0.8 / max(1, len(keys)))
    label_every = max(1, round(len(shown) / 8))
    points: list[Point] = []
    bars: list[Bar] = []
    for index, (change, scores) in enumerate(zip(shown, read, strict=True)):
        centre = LEFT + slot * (index + 0.5)
        when = f"{change.last_updated or change.recorded_at:%Y-%m-%d}"
        band = RiskBand(change.band) if change.band in RiskBand.values else RiskBand.for_score(change.risk_score)
        percentile = "" if change.percentile is None else f", percentile {change.percentile:g}"
        points.append(
            Point(
                x=round(centre, 1),
                y=_score_y(change.risk_score),
                colour=BAND_COLOURS[band],
                title=f"{when}: score {change.risk_score:g} ({band.label}{percentile})",
                label=when if index % label_every == 0 or index == len(shown) - 1 else "",
            )
        )
        start = centre - bar_width * len(keys) / 2
        by_key = {c.key: c for c in scores}
        for position, key in enumerate(keys):
            factor = by_key.get(key)
            if factor is None:
                continue
            height = round(abs(factor.score) / widest * half, 1)
            bars.append(
                Bar(
                    x=round(start + position * bar_width, 1),
                    y=round(zero_y - height if factor.score > 0 else zero_y, 1),
                    width=round(bar_width, 1),
                    height=height,
                    colour=colours[key],
                    title=f"{when}: {factor.name} {factor.score:+.3f}",
                )
            )
    return ScoreChart(
        width=WIDTH,
        height=HEIGHT,
        points=tuple(points),
        line=" ".join(f"{p.x},{p.y}" for p in points),
        bars=tuple(bars),
        guides=tuple(Guide(_score_y(t), str(t), -2 if t == 99 else (9 if t == 95 else 4)) for t in THRESHOLDS),
        legend=tuple(LegendEntry(colours[key], names[key]) for key in keys),
        zero_y=zero_y,
        factor_top=FACTOR_TOP,
        factor_bottom=FACTOR_BOTTOM,
        left=LEFT,
        right_edge=WIDTH - RIGHT,
        shown=len(shown),
        total=len(shown) if total is None else total,
    )
