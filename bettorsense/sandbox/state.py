"""Everything the sandbox remembers: clients, issued tokens, counters, faults, profile changes.

One :class:`threading.Lock` guards it all. Handler threads hold it only for bookkeeping; JWT
signing/verification and profile generation happen outside it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, NamedTuple

from bettorsense.sandbox import profiles, tokens
from bettorsense.sandbox.faults import BODY_KINDS, Fault

logger = logging.getLogger(__name__)

AUDIENCE_ENVIRONMENTS: Final[dict[str, str]] = {
    "mts-insight-tech-non-prod": "integration",
    "mts-insight-tech": "production",
}
ENVIRONMENT_AUDIENCES: Final[dict[str, str]] = {env: aud for aud, env in AUDIENCE_ENVIRONMENTS.items()}
DEFAULT_CLIENT_ID: Final = "demo-client"
DEFAULT_CLIENT_SECRET: Final = "demo-client-secret"
DEFAULT_BOOKMAKERS: Final = frozenset({(123, 456)})
BATCH_ENVELOPES: Final = ("items", "bare", "results")
CONFIG_KEYS: Final = frozenset(
    {
        "token_lifetime",
        "enforce_reuse",
        "reuse_threshold",
        "players",
        "seed",
        "page_size",
        "batch_envelope",
        "batch_date_param",
        "start_day",
    }
)
_VERIFIED_CACHE_SIZE: Final = 4096
_TOKEN_PRUNE_AT: Final = 10_000


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    secret: str = field(repr=False)
    audiences: frozenset[str] = frozenset(AUDIENCE_ENVIRONMENTS)
    bookmakers: frozenset[tuple[int, int]] = DEFAULT_BOOKMAKERS


@dataclass
class IssuedToken:
    """The server-side record of one access token (the token string itself is not kept)."""

    jti: str
    client_id: str
    audience: str
    issued_at: float
    expires_at: float
    fingerprint: str
    expires_in: int = 0  # as answered: the configured lifetime, whatever the second's fraction
    revoked: bool = False

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now


@dataclass(frozen=True)
class RecordedRequest:
    """One request to an API prefix, as received (``path`` is the raw, still-encoded path)."""

    method: str
    path: str
    route: str | None
    environment: str | None
    account_id: str | None
    bookmaker_id: str | None
    sub_bookmaker_id: str | None
    query: dict[str, str]
    status: int | None
    client_id: str | None
    at: float


class ReuseViolation(Exception):
    """A token was requested while the client's current one still has plenty of time left."""

    def __init__(self, current: IssuedToken, seconds_left: float, threshold: float) -> None:
        super().__init__("token reuse rule violated")
        self.current = current
        self.seconds_left = seconds_left
        self.threshold = threshold


class ProfileRef(NamedTuple):
    """Enough to generate one profile outside the lock."""

    player_index: int  # not ``index``, which would shadow tuple.index
    version: int
    updated: date


class SandboxState:
    """Clients, tokens, counters, faults and profile changes of one sandbox."""

    def __init__(
        self,
        token_lifetime: float = 600,
        enforce_reuse: bool = False,
        players: int = 5000,
        seed: int = 1,
        clock: Callable[[], float] = time.time,
        *,
        reuse_threshold: float | None = None,
        page_size: int = 1000,
        batch_envelope: str = "items",
        batch_date_param: str = "changedSince",
        start_day: date | None = None,
        max_recorded_requests: int = 1000,
        default_client: bool = True,
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.signing_key = secrets.token_bytes(32)
        self.key_id = tokens.fingerprint(self.signing_key.hex())
        self.issuer: str | None = None  # None: the serving SandboxServer's URL
        self.clients: dict[str, ClientRecord] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.faults: list[Fault] = []
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self.token_lifetime = 600.0
        self.enforce_reuse = False
        self.reuse_threshold: float | None = None
        self.players = 5000
        self.seed = 1
        self.page_size = 1000
        self.batch_envelope = "items"
        self.batch_date_param = "changedSince"
        self.start_day = datetime.fromtimestamp(clock(), UTC).date()
        self.days_advanced = 0
        self.joined: dict[int, int] = {}  # players added at run time: index -> day they joined
        self._latest: dict[tuple[str, str], str] = {}
        self._verified: dict[str, str] = {}
        self._books: dict[tuple[int, int], profiles.ProfileBook] = {}
        self._reset_counters()
        self.set_config(
            token_lifetime=token_lifetime,
            enforce_reuse=enforce_reuse,
            reuse_threshold=reuse_threshold,
            players=players,
            seed=seed,
            page_size=page_size,
            batch_envelope=batch_envelope,
            batch_date_param=batch_date_param,
            start_day=start_day,
        )
        if default_client:
            self.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)

    # --- configuration ---------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        secret: str,
        audiences: Iterable[str] = tuple(AUDIENCE_ENVIRONMENTS),
        bookmakers: Iterable[tuple[int, int]] = DEFAULT_BOOKMAKERS,
    ) -> ClientRecord:
        """Register (or replace) a client with the audiences and (bookmaker, sub-bookmaker) pairs it holds."""
        if not client_id or not secret:
            raise ValueError("A client needs a non-empty client_id and secret.")
        record = ClientRecord(
            client_id=client_id,
            secret=secret,
            audiences=frozenset(audiences),
            bookmakers=frozenset((int(b), int(s)) for b, s in bookmakers),
        )
        with self.lock:
            self.clients[client_id] = record
        logger.info("Sandbox client %s registered (audiences %s)", client_id, sorted(record.audiences))
        return record

    def set_config(self, **changes: Any) -> dict[str, Any]:
        """Change settings at run time (None values are ignored, except for reuse_threshold)."""
        unknown = set(changes) - CONFIG_KEYS
        if unknown:
            raise ValueError(f"Unknown sandbox setting(s): {', '.join(sorted(unknown))}.")
        values = {k: v for k, v in changes.items() if v is not None or k == "reuse_threshold"}
        checked = {name: _CHECKS[name](value) for name, value in values.items()}
        with self.lock:
            for name, value in checked.items():
                setattr(self, name, value)
            if {"players", "seed", "start_day"} & set(checked):
                self._books.clear()
                self.joined = {}
            return self._config()

    def _config(self) -> dict[str, Any]:
        return {
            "token_lifetime": self.token_lifetime,
            "expires_in": self.expires_in,
            "enforce_reuse": self.enforce_reuse,
            "reuse_threshold": self.effective_reuse_threshold,
            "players": self.players,
            "seed": self.seed,
            "page_size": self.page_size,
            "batch_envelope": self.batch_envelope,
            "batch_date_param": self.batch_date_param,
            "start_day": self.start_day.isoformat(),
            "day": self.current_day.isoformat(),
        }

    @property
    def expires_in(self) -> int:
        """The whole-second lifetime announced as ``expires_in`` (and enforced)."""
        return max(1, round(self.token_lifetime))

    @property
    def effective_reuse_threshold(self) -> float:
        if self.reuse_threshold is not None:
            return self.reuse_threshold
        return min(60.0, 0.2 * self.expires_in)

    @property
    def current_day(self) -> date:
        return self.start_day + timedelta(days=self.days_advanced)

    # --- tokens ------------------------------------------------------------------------------

    def issue_token(self, client: ClientRecord, audience: str, issuer: str) -> tuple[str, IssuedToken]:
        """Sign a new token for ``client``; raise :class:`ReuseViolation` under the reuse rule."""
        with self.lock:
            now = self.clock()
            if self.enforce_reuse:
                current = self.tokens.get(self._latest.get((client.client_id, audience), ""))
                threshold = self.effective_reuse_threshold
                if current is not None and not current.revoked:
                    left = current.seconds_left(now)
                    if left > threshold:
                        self.reuse_violations += 1
                        raise ReuseViolation(current, left, threshold)
            expires_in = self.expires_in
            jti = secrets.token_hex(16)
            claims = {
                "iss": issuer,
                "sub": f"{client.client_id}@clients",
                "aud": audience,
                "azp": client.client_id,
                "iat": int(now),
                "exp": int(now) + expires_in,
                "gty": "client-credentials",
                "jti": jti,
            }
            token = tokens.encode(claims, self.signing_key, kid=self.key_id)
            record = IssuedToken(
                jti=jti,
                client_id=client.client_id,
                audience=audience,
                issued_at=now,
                expires_at=int(now) + expires_in,  # the exp claim: what a gateway checking exp enforces
                fingerprint=tokens.fingerprint(token),
                expires_in=expires_in,
            )
            if len(self.tokens) >= _TOKEN_PRUNE_AT:
                self._prune_tokens(now)
            self.tokens[jti] = record
            self._latest[(client.client_id, audience)] = jti
            self.tokens_issued += 1
        logger.info(
            "Sandbox issued token %s to %s for %s (%s s)", record.fingerprint, client.client_id, audience, expires_in
        )
        return token, record

    def _prune_tokens(self, now: float) -> None:
        for jti in [jti for jti, rec in self.tokens.items() if rec.expires_at <= now]:
            del self.tokens[jti]
        self._verified.clear()

    def authenticate(self, token: str, audience: str) -> tuple[IssuedToken | None, str]:
        """The record of a valid token for ``audience``, or None and the reason it is refused."""
        jti = self._verified.get(token)
        if jti is None:
            try:
                claims = tokens.decode(token, self.signing_key)
            except tokens.TokenError as err:
                return None, str(err)
            jti = claims.get("jti")
            if not isinstance(jti, str) or jti not in self.tokens:
                return None, "The token is unknown to this server."
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = jti
        record = self.tokens.get(jti)
        if record is None:
            return None, "The token is unknown to this server."
        if record.revoked:
            return None, "The token has been revoked."
        if record.seconds_left(self.clock()) <= 0:
            expired = datetime.fromtimestamp(record.expires_at, UTC).isoformat(timespec="seconds")
            return None, f"The token expired at '{expired}'."
        if record.audience != audience:
            return None, f"The audience '{record.audience}' is invalid."
        return record, ""

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every current token (of ``client_id`` only, if given); return how many."""
        with self.lock:
            now = self.clock()
            revoked = 0
            for record in self.tokens.values():
                if record.revoked or record.seconds_left(now) <= 0:
                    continue
                if client_id is None or record.client_id == client_id:
                    record.revoked = True
                    revoked += 1
            self.revocations += revoked
        logger.info("Sandbox revoked %d token(s) of %s", revoked, client_id or "all clients")
        return revoked

    def note_token_request(self, client_key: str, outcome: str) -> None:
        """Count one token request: outcome ``issued`` or the reason it was rejected."""
        with self.lock:
            entry = self.token_requests.setdefault(client_key, {"total": 0, "issued": 0, "rejected": Counter()})
            entry["total"] += 1
            if outcome == "issued":
                entry["issued"] += 1
            else:
                entry["rejected"][outcome] += 1

    # --- faults ------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        logger.info("Sandbox fault added: %s", fault)
        return fault

    def clear_faults(self) -> int:
        with self.lock:
            count = len(self.faults)
            self.faults.clear()
        return count

    def take_fault(
        self, targets: tuple[str, ...], *, body: bool, page: int | None = None, client_id: str | None = None
    ) -> Fault | None:
        """The first fault for ``targets`` of the given phase; counts it down (removing it at 0)."""
        if not self.faults:  # cheap unlocked check on the hot path
            return None
        with self.lock:
            for fault in self.faults:
                if (fault.kind in BODY_KINDS) == body and fault.matches(targets, page, client_id):
                    fault.fired += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # --- profiles ----------------------------------------------------------------------------

    def advance_day(self, days: int = 1) -> date:
        """Move the sandbox's day forward and re-score ~10% of the players on each new day."""
        if days < 1:
            raise ValueError("days must be >= 1")
        with self.lock:
            self.days_advanced += days
            day = self.current_day
        logger.info("Sandbox day is now %s", day.isoformat())
        return day

    @property
    def player_count(self) -> int:
        """Every player index in use: the configured players and those added since."""
        return self.players + len(self.joined)

    def add_players(self, count: int = 1) -> list[str]:
        """Add ``count`` players scored today (on every bookmaker pair); returns their account ids.

        They appear in the batch's next pages and under ``changedSince`` from today, as players who
        sign up do. As for the others, every 97th and 89th index has no active profile.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        with self.lock:
            first = self.player_count + 1
            for index in range(first, first + count):
                self.joined[index] = self.days_advanced
        logger.info("Sandbox added %d players from player_%d", count, first)
        return [f"{profiles.PLAYER_PREFIX}{index}" for index in range(first, first + count)]

    def _book(self, bookmaker: int, sub_bookmaker: int) -> profiles.ProfileBook:
        book = self._books.get((bookmaker, sub_bookmaker))
        if book is None:
            book = profiles.ProfileBook(self.seed, bookmaker, sub_bookmaker, self.players, joined=self.joined)
            self._books[(bookmaker, sub_bookmaker)] = book
        book.sync(self.days_advanced)
        return book

    def profile_ref(self, bookmaker: int, sub_bookmaker: int, index: int) -> ProfileRef:
        with self.lock:
            book = self._book(bookmaker, sub_bookmaker)
            start = self.start_day.toordinal()
            return ProfileRef(index, book.version_of(index), date.fromordinal(book.updated_ordinal(index, start)))

    def batch_refs(
        self, bookmaker: int, sub_bookmaker: int, page: int, page_size: int, changed_since: float | None
    ) -> tuple[list[ProfileRef], int]:
        """The profiles on ``page`` (1-based) of the batch, and the total count."""
        first = (page - 1) * page_size
        with self.lock:
            book = self._book(bookmaker, sub_bookmaker)
            start = self.start_day.toordinal()
            if changed_since is None:
                total = profiles.active_count(self.player_count)
                indexes: Iterable[int] = []
                if first < total:
                    index = profiles.nth_active(first + 1)
                    picked: list[int] = []
                    while len(picked) < page_size and index <= self.player_count:
                        if profiles.index_status(index) is profiles.Status.ACTIVE:
                            picked.append(index)
                        index += 1
                    indexes = picked
            else:
                selected = book.changed_since(changed_since, start)
                total = len(selected)
                indexes = selected[first : first + page_size]
            refs = [
                ProfileRef(i, book.version_of(i), date.fromordinal(book.updated_ordinal(i, start))) for i in indexes
            ]
        return refs, total

    def profile_json(self, bookmaker: int, sub_bookmaker: int, ref: ProfileRef) -> bytes:
        return profiles.profile_json(self.seed, bookmaker, sub_bookmaker, ref.player_index, ref.version, ref.updated)

    # --- requests and stats ------------------------------------------------------------------

    def record_request(self, request: RecordedRequest) -> None:
        key = request.route or "unmatched"
        status = str(request.status) if request.status is not None else "no-answer"
        with self.lock:
            self.requests.append(request)
            self.api_total += 1
            self.api_by_status[status] += 1
            self.api_by_route.setdefault(key, Counter())[status] += 1

    def _reset_counters(self) -> None:
        self.tokens_issued = 0
        self.reuse_violations = 0
        self.revocations = 0
        self.token_requests: dict[str, dict[str, Any]] = {}
        self.api_total = 0
        self.api_by_status: Counter[str] = Counter()
        self.api_by_route: dict[str, Counter[str]] = {}

    def reset(self) -> None:
        """Forget counters, recorded requests, tokens and faults (clients, config and day stay)."""
        with self.lock:
            self._reset_counters()
            self.requests.clear()
            self.tokens.clear()
            self._latest.clear()
            self._verified.clear()
            self.faults.clear()
        logger.info("Sandbox state reset")

    def stats(self) -> dict[str, Any]:
        """A JSON-able snapshot of the configuration and every counter."""
        with self.lock:
            now = self.clock()
            active = sum(1 for r in self.tokens.values() if not r.revoked and r.seconds_left(now) > 0)
            return {
                "config": self._config(),
                "clients": sorted(self.clients),
                "days_advanced": self.days_advanced,
                "tokens": {
                    "issued": self.tokens_issued,
                    "active": active,
                    "revoked": sum(1 for r in self.tokens.values() if r.revoked),
                },
                "token_requests": {
                    client: {"total": e["total"], "issued": e["issued"], "rejected": dict(e["rejected"])}
                    for client, e in self.token_requests.items()
                },
                "reuse_violations": self.reuse_violations,
                "revocations": self.revocations,
                "api_requests": {
                    "total": self.api_total,
                    "by_status": dict(self.api_by_status),
                    "by_route": {route: dict(counts) for route, counts in self.api_by_route.items()},
                },
                "faults": [fault.to_dict() for fault in self.faults],
            }


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be > 0")
    return number


def _optional_threshold(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if number < 0:
        raise ValueError("reuse_threshold must be >= 0")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("must be a boolean")


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or int(value) != value or int(value) < minimum:
            raise ValueError(f"must be an integer >= {minimum}")
        return int(value)

    return check


def _envelope(value: Any) -> str:
    if value not in BATCH_ENVELOPES:
        raise ValueError(f"batch_envelope must be one of {', '.join(BATCH_ENVELOPES)}")
    return str(value)


def _param_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("batch_date_param must be a non-empty string")
    return value


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


_CHECKS: Final[dict[str, Callable[[Any], Any]]] = {
    "token_lifetime": _positive_float,
    "enforce_reuse": _bool,
    "reuse_threshold": _optional_threshold,
    "players": _int_at_least(0),
    "seed": _int_at_least(-(2**63)),
    "page_size": _int_at_least(1),
    "batch_envelope": _envelope,
    "batch_date_param": _param_name,
    "start_day": _day,
}
