"""Deterministic, lazily generated player risk profiles.

Nothing is materialised per player. A profile is a pure function of
``(seed, bookmakerId, subBookmakerId, player index, version, day)``; the only per-player state kept
is, per bookmaker pair, a dict of the players re-scored by :meth:`ProfileBook.sync` (about 10% of
them per simulated day) and, only once a ``changedSince`` filter is used, one byte per player
holding the day of its initial score.

Accounts (``N`` = the number of players, default 5000):

* ``player_1`` .. ``player_N`` exist (exact spelling, no leading zeros), except that
  every 97th (``player_97``, ``player_194``, ...) answers **404 "Player profile not created"** and
  every 89th (``player_89``, ``player_178``, ...) answers **404 "Player profile is inactive"**
  (97 wins where both apply, e.g. ``player_8633``). Those two kinds are left out of the batch.
* any account id starting with ``not_created_`` -> 404 "Player profile not created";
* any account id starting with ``inactive_`` -> 404 "Player profile is inactive";
* anything else, including ``player_0`` and ``player_{N+1}`` -> 404 "Player not found".

Scores: within every block of 100 consecutive players the bands are dealt exactly 60 no risk,
22 low, 13 medium, 3 high and 2 very high (in a per-block shuffled order), so any 200 consecutive
players hold all five bands. A re-score moves the player's initial score by a non-zero random
amount, so some players cross a band.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from array import array
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from functools import lru_cache
from typing import Final

CATEGORY_NAMES: Final[dict[int, str]] = {
    1: "Betting behaviour",
    2: "Depositing behaviour",
    3: "Losses",
    4: "Time",
    5: "Speed of play",
    6: "Withdrawal-related behaviour",
    8: "RG activity",
}
# How strongly each factor follows the overall score (losses and deposits lead, as in the example).
_CATEGORY_WEIGHTS: Final[dict[int, float]] = {1: 0.7, 2: 1.1, 3: 1.4, 4: 0.6, 5: 0.8, 6: 0.5, 8: 0.4}

RISK_CATEGORY_NAMES: Final[tuple[str, ...]] = ("No risk", "Low risk", "Medium risk", "High risk", "Very high risk")

NOT_CREATED_EVERY: Final = 97
INACTIVE_EVERY: Final = 89
NOT_CREATED_PREFIX: Final = "not_created_"
INACTIVE_PREFIX: Final = "inactive_"
PLAYER_PREFIX: Final = "player_"
RESCORE_SHARE: Final = 0.10
INITIAL_SPREAD_DAYS: Final = 30
SCORE_TIME: Final = "T00:14:00Z"
SCORE_SECOND_OF_DAY: Final = 14 * 60

# Slots 0..99 of a block of 100 players -> band: 60 / 22 / 13 / 3 / 2.
_BAND_SLOTS: Final[tuple[int, ...]] = (60, 82, 95, 98, 100)
_BAND_SCORES: Final[tuple[tuple[int, int], ...]] = ((1, 49), (50, 67), (68, 94), (95, 98), (99, 100))
_COPRIMES_100: Final[tuple[int, ...]] = tuple(n for n in range(1, 100) if n % 2 and n % 5)
# Score -> percentile, piecewise linear through the band shares above.
_PERCENTILE_POINTS: Final[tuple[tuple[int, float], ...]] = (
    (1, 0.0),
    (50, 60.0),
    (68, 82.0),
    (95, 95.0),
    (99, 98.0),
    (100, 100.0),
)


class Status(Enum):
    ACTIVE = "active"
    NOT_FOUND = "Player not found"
    NOT_CREATED = "Player profile not created"
    INACTIVE = "Player profile is inactive"


def risk_category(score: int) -> int:
    """Band code of a score: <50 -> 0, [50,68) -> 1, [68,95) -> 2, [95,99) -> 3, >=99 -> 4.

    The vendor's top band is written [99, 100), which leaves 100 in no band although the scale
    goes up to 100; the sandbox treats 100 as very high risk (4).
    """
    if score < 50:
        return 0
    if score < 68:
        return 1
    if score < 95:
        return 2
    if score < 99:
        return 3
    return 4


def player_index(account_id: str, players: int) -> int | None:
    """``n`` for ``player_n`` with ``1 <= n <= players``, else None."""
    if not account_id.startswith(PLAYER_PREFIX):
        return None
    digits = account_id[len(PLAYER_PREFIX) :]
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0") or len(digits) > 9:
        return None
    index = int(digits)
    return index if index <= players else None


def index_status(index: int) -> Status:
    if index % NOT_CREATED_EVERY == 0:
        return Status.NOT_CREATED
    if index % INACTIVE_EVERY == 0:
        return Status.INACTIVE
    return Status.ACTIVE


def classify(account_id: str, players: int) -> tuple[Status, int | None]:
    """The outcome for an account id, and its player index when it is one of ``player_1..N``."""
    if account_id.startswith(NOT_CREATED_PREFIX):
        return Status.NOT_CREATED, None
    if account_id.startswith(INACTIVE_PREFIX):
        return Status.INACTIVE, None
    index = player_index(account_id, players)
    if index is None:
        return Status.NOT_FOUND, None
    return index_status(index), index


def _excluded_upto(n: int) -> int:
    """How many of players 1..n are left out of the batch (not created or inactive)."""
    both = NOT_CREATED_EVERY * INACTIVE_EVERY
    return n // NOT_CREATED_EVERY + n // INACTIVE_EVERY - n // both


def active_count(players: int) -> int:
    return players - _excluded_upto(players)


def nth_active(position: int) -> int:
    """Index of the ``position``-th (1-based) player that has an active profile."""
    low, high = position, 2 * position + 2
    while low < high:  # smallest n with n - excluded(n) >= position
        mid = (low + high) // 2
        if mid - _excluded_upto(mid) >= position:
            high = mid
        else:
            low = mid + 1
    return low


def _mix(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@lru_cache(maxsize=2048)
def _age_chunk(seed: int, bookmaker: int, sub_bookmaker: int, chunk: int) -> bytes:
    """64 random bytes: the initial-score ages of players ``64 * chunk`` .. ``64 * chunk + 63``."""
    return hashlib.blake2b(f"{seed}:{bookmaker}:{sub_bookmaker}:age:{chunk}".encode(), digest_size=64).digest()


def initial_age_days(seed: int, bookmaker: int, sub_bookmaker: int, index: int) -> int:
    """Days before the sandbox's first day at which the player's initial score was computed."""
    return _age_chunk(seed, bookmaker, sub_bookmaker, index >> 6)[index & 63] % INITIAL_SPREAD_DAYS


def initial_ages(seed: int, bookmaker: int, sub_bookmaker: int, players: int) -> bytes:
    """``initial_age_days`` of players 0..players at once (one hash per 64 players)."""
    chunks = (
        hashlib.blake2b(f"{seed}:{bookmaker}:{sub_bookmaker}:age:{chunk}".encode(), digest_size=64).digest()
        for chunk in range((players >> 6) + 1)
    )
    return bytes(byte % INITIAL_SPREAD_DAYS for byte in b"".join(chunks))


@lru_cache(maxsize=4096)
def _block_layout(seed: int, bookmaker: int, sub_bookmaker: int, block: int) -> tuple[int, int]:
    """(multiplier, shift) of the per-block permutation of the 100 band slots."""
    block_hash = _mix(seed, bookmaker, sub_bookmaker, "block", block)
    return _COPRIMES_100[block_hash % len(_COPRIMES_100)], (block_hash >> 16) % 100


def _base_score(seed: int, bookmaker: int, sub_bookmaker: int, index: int) -> int:
    block, offset = divmod(index - 1, 100)
    multiplier, shift = _block_layout(seed, bookmaker, sub_bookmaker, block)
    slot = (multiplier * offset + shift) % 100
    band = next(b for b, upper in enumerate(_BAND_SLOTS) if slot < upper)
    low, high = _BAND_SCORES[band]
    draw = _mix(seed, bookmaker, sub_bookmaker, index, "base")
    if band == 0:  # most players sit well below the first threshold: triangular(1, 49, mode 18)
        u, mode = (draw >> 11) / 2**53, (18 - low) / (high - low)
        if u <= mode:
            value = low + (high - low) * math.sqrt(u * mode)
        else:
            value = high - (high - low) * math.sqrt((1 - u) * (1 - mode))
        return min(high, max(low, round(value)))
    return low + draw % (high - low + 1)


def _percentile(score: int, rng: random.Random) -> float:
    for (x0, y0), (x1, y1) in itertools.pairwise(_PERCENTILE_POINTS):
        if score <= x1:
            value = y0 + (y1 - y0) * (score - x0) / (x1 - x0)
            break
    else:  # pragma: no cover - scores are clamped to 1..100
        value = 100.0
    return round(min(99.999, max(0.001, value + rng.uniform(-1.5, 1.5))), 6)


def _scores(
    seed: int, bookmaker: int, sub_bookmaker: int, index: int, version: int
) -> tuple[int, float, list[tuple[float, int]]]:
    """(riskScore, percentile, [(category score, key)] sorted by score, highest first)."""
    score = _base_score(seed, bookmaker, sub_bookmaker, index)
    rng = random.Random(_mix(seed, bookmaker, sub_bookmaker, index, "version", version))
    if version:
        delta = round(rng.gauss(0, 9)) or rng.choice((-1, 1))
        moved = min(100, max(1, score + delta))
        score = moved if moved != score else (score - 1 if score > 1 else score + 1)
    bias = (score - 45) / 18
    gauss = rng.gauss
    categories = [(round(gauss(bias * weight, 1.6), 4), key) for key, weight in _CATEGORY_WEIGHTS.items()]
    categories.sort(key=lambda item: (-item[0], item[1]))
    return score, _percentile(score, rng), categories


def build_profile(
    seed: int, bookmaker: int, sub_bookmaker: int, index: int, version: int, updated: date
) -> dict[str, object]:
    """The profile of ``player_<index>`` at ``version`` (0 = initial score, d = re-scored on day d)."""
    score, percentile, categories = _scores(seed, bookmaker, sub_bookmaker, index, version)
    return {
        "playerId": f"{PLAYER_PREFIX}{index}",
        "lastUpdatedDateTime": updated.isoformat() + SCORE_TIME,
        "riskScore": score,
        "riskCategory": risk_category(score),
        "percentile": percentile,
        "categoryScores": [{"key": key, "name": CATEGORY_NAMES[key], "score": value} for value, key in categories],
    }


@lru_cache(maxsize=8192)
def profile_json(seed: int, bookmaker: int, sub_bookmaker: int, index: int, version: int, updated: date) -> bytes:
    """:func:`build_profile` as compact JSON, cached (bytes are immutable, so shareable between threads).

    Formatted by hand for speed: every string in it is a known ASCII constant or ``player_<n>``, and
    ``repr`` of a finite float is what :mod:`json` writes too.
    """
    score, percentile, categories = _scores(seed, bookmaker, sub_bookmaker, index, version)
    items = ",".join(f'{{"key":{key},"name":"{CATEGORY_NAMES[key]}","score":{value!r}}}' for value, key in categories)
    return (
        f'{{"playerId":"{PLAYER_PREFIX}{index}","lastUpdatedDateTime":"{updated.isoformat()}{SCORE_TIME}",'
        f'"riskScore":{score},"riskCategory":{risk_category(score)},"percentile":{percentile!r},'
        f'"categoryScores":[{items}]}}'
    ).encode()


@dataclass
class ProfileBook:
    """What changed for one (bookmaker, sub-bookmaker) pair. Not thread-safe: the state locks it."""

    seed: int
    bookmaker: int
    sub_bookmaker: int
    players: int
    synced_days: int = 0
    versions: dict[int, int] = field(default_factory=dict)  # player index -> day of its last re-score
    # Players added after the start (index -> the day they joined), shared with the state; never re-scored.
    joined: dict[int, int] = field(default_factory=dict)
    _ages: bytes | None = None
    _filtered: dict[tuple[int, int, int], array[int]] = field(default_factory=dict)

    def rescored_on(self, day: int) -> list[int]:
        """The deterministic ~10% of players re-scored on simulated day ``day`` (1-based)."""
        rng = random.Random(_mix(self.seed, self.bookmaker, self.sub_bookmaker, "rescore", day))
        count = max(1, round(self.players * RESCORE_SHARE)) if self.players else 0
        return rng.sample(range(1, self.players + 1), count)

    def sync(self, days: int) -> None:
        """Apply the re-scores of the days up to ``days`` not applied yet."""
        while self.synced_days < days:
            self.synced_days += 1
            for index in self.rescored_on(self.synced_days):
                self.versions[index] = self.synced_days

    def version_of(self, index: int) -> int:
        return self.versions.get(index, 0)

    def updated_ordinal(self, index: int, start_ordinal: int) -> int:
        version = self.versions.get(index, 0)
        if version:
            return start_ordinal + version
        joined_on = self.joined.get(index)
        if joined_on is not None:
            return start_ordinal + joined_on
        return start_ordinal - self.age_of(index)

    def age_of(self, index: int) -> int:
        if self._ages is not None:
            return self._ages[index]
        return initial_age_days(self.seed, self.bookmaker, self.sub_bookmaker, index)

    def changed_since(self, cutoff_epoch: float, start_ordinal: int) -> array[int]:
        """Indexes of the active players whose ``lastUpdatedDateTime >= cutoff``, in order (cached)."""
        cutoff = math.ceil(cutoff_epoch)  # timestamps are whole seconds
        key = (cutoff, self.synced_days, len(self.joined))
        cached = self._filtered.get(key)
        if cached is not None:
            return cached
        if self._ages is None:  # one byte per player, computed once
            self._ages = initial_ages(self.seed, self.bookmaker, self.sub_bookmaker, self.players)
        epoch_ordinal = date(1970, 1, 1).toordinal()
        first_day = epoch_ordinal - ((SCORE_SECOND_OF_DAY - cutoff) // 86400)  # ceil((cutoff - 840) / 86400)
        ages, versions = self._ages, self.versions
        selected = array("I")
        for index in range(1, self.players + 1):
            if index % NOT_CREATED_EVERY == 0 or index % INACTIVE_EVERY == 0:
                continue
            version = versions.get(index, 0)
            day = start_ordinal + version if version else start_ordinal - ages[index]
            if day >= first_day:
                selected.append(index)
        for index, joined_on in sorted(self.joined.items()):
            if index_status(index) is Status.ACTIVE and start_ordinal + joined_on >= first_day:
                selected.append(index)
        if len(self._filtered) >= 8:
            self._filtered.clear()
        self._filtered[key] = selected
        return selected
