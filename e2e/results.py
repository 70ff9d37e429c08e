"""Figures and the results table: each scenario records what it measured next to what was expected."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    name: str
    measured: str
    expected: str
    ok: bool | None  # None: reported, not asserted


@dataclass
class ScenarioResult:
    number: int
    title: str
    profile: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None
    #: Where an aborted scenario raised: the suite's own frames below its runner, "file:line in name" each.
    raised_at: str | None = None
    seconds: float = 0.0

    def check(self, name: str, measured: object, expected: str, ok: bool) -> bool:
        self.figures.append(Figure(name, str(measured), expected, bool(ok)))
        print(f"    [{'ok' if ok else 'FAIL'}] {name}: {measured} (expected {expected})", flush=True)
        return bool(ok)

    def report(self, name: str, measured: object, note: str = "reported") -> None:
        self.figures.append(Figure(name, str(measured), note, None))
        print(f"    [info] {name}: {measured}", flush=True)

    def fail(self, err: BaseException) -> None:
        self.error = f"{type(err).__name__}: {err}"
        frames = [
            f"e2e/{frame.filename.rsplit('/e2e/', 1)[1]}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(err.__traceback__)
            if "/e2e/" in frame.filename and not frame.filename.endswith("/e2e/__main__.py")
        ]
        self.raised_at = " -> ".join(frames) or None
        print(f"    [FAIL] scenario aborted: {self.error}\n{traceback.format_exc()}", flush=True)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.figures) and all(f.ok is not False for f in self.figures)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[ScenarioResult]) -> str:
    """A Markdown table: scenario, figure, measured, expected, verdict, and the command to rerun it."""
    lines = [
        "| # | profile | figure | measured | expected | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        head = f"{result.number}. {result.title}"
        rows = list(result.figures)
        if result.error:
            rows.append(Figure("scenario", result.error, "completes", False))
        for index, figure in enumerate(rows):
            verdict = "reported" if figure.ok is None else ("pass" if figure.ok else "**FAIL**")
            lines.append(
                f"| {_cell(head) if index == 0 else ''} | {result.profile if index == 0 else ''} | "
                f"{_cell(figure.name)} | {_cell(figure.measured)} | {_cell(figure.expected)} | {verdict} |"
            )
    lines.append("")
    lines.append("| scenario | profile | verdict | time | rerun |")
    lines.append("| --- | --- | --- | --- | --- |")
    for result in results:
        verdict = "pass" if result.passed else "**FAIL**"
        lines.append(
            f"| {result.number}. {_cell(result.title)} | {result.profile} | {verdict} | "
            f"{result.seconds:.0f} s | `{result.command}` |"
        )
    return "\n".join(lines) + "\n"


def failure_summary(results: list[ScenarioResult]) -> str:
    """A few lines naming each failed run and what failed in it, printed last (a log cut short keeps them)."""
    lines = []
    for result in results:
        if result.passed:
            continue
        lines.append(
            f"e2e: FAILED scenario {result.number} ({result.profile}) after {result.seconds:.0f} s: {result.command}"
        )
        for figure in result.figures:
            if figure.ok is False:
                lines.append(f"e2e:   {figure.name}: {figure.measured} (expected {figure.expected})")
        if result.error:
            where = f" at {result.raised_at}" if result.raised_at else ""
            lines.append(f"e2e:   aborted{where}: {result.error}")
        if not result.figures and not result.error:
            lines.append("e2e:   it recorded no figure")
    return "\n".join(lines)
