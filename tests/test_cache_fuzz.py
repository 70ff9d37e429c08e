"""Fuzz: hostile values under every key the app uses, then the public calls.

Each round writes a value from a seeded generator under a few of the app's keys: numbers, strings
(huge ones too), bytes, lists, dicts of the wrong shape, truncated or bit-flipped sealed entries,
entries sealed for another key or kind or under a key this process does not hold, sealed entries
whose fields have the wrong type, and the unsealed payloads an older version wrote. Then it calls
what a host calls: ``get_access_token``, ``get_player_risk_profile``, ``refresh_if_due``, the
health snapshot and the health endpoint, each round as a new process would (no token memo, no
profile memo).

Promise checked: none of them raises anything but a ``BettorSenseError``, the health endpoint
answers 200 or 503, and once the writes stop the fleet holds a token the API accepts within
``RECOVERY_CALLS`` calls of ``get_access_token``.

The renewal lock's key gets values with an expiry (``LOCK_TTL``): a foreign lock without one is the
lock's own business (bettorsense.locks), tested with it. The run uses whatever cache the test
settings name: the database cache, or Redis when ``CACHE_URL`` is a redis URL.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.test import RequestFactory

from bettorsense import entries, services, tokens
from bettorsense.cache import cache_key
from bettorsense.client import breaker
from bettorsense.client.breaker import get_breaker
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import BettorSenseError
from bettorsense.health.snapshot import take_snapshot
from bettorsense.profile_memo import MEMO
from bettorsense.sealing import seal
from bettorsense.services import get_player_risk_profile
from bettorsense.tokens.manager import TokenManager
from bettorsense.views import health

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 1101
ROUNDS = 150
RECOVERY_CALLS = 2
LOCK_TTL = 1
HEALTH_KEY = "f" * 40
ACCOUNTS = ("player_1", "player_2", "player_3")
OTHER_KEY = "a key no process of this fleet holds " + "x" * 20

#: The kind and a well-formed payload of the entry under each sealed key, for the mutations.
Shape = tuple[str, dict[str, Any]]


def app_keys(config: Config) -> dict[str, Shape | None]:
    """Every key the calls under test read or write, with its sealed shape (None: a plain value)."""
    shared = TokenManager(config).shared
    breaker = get_breaker(config)
    now = time.time()
    minute, hour = int(now // 60), int(now // 3600)
    token = {"v": "t" * 40, "t": "Bearer", "i": now, "e": now + 600}
    renewal = {"at": now, "outcome": "ok", "origin": "beat", "duration": 0.1, "fingerprint": None, "error": None}
    keys: dict[str, Shape | None] = {
        shared.token_key: ("token", token),
        shared.lock_key: None,
        shared.backoff_key: ("backoff", {"until": now + 5, "error": "TokenRateLimited", "message": "m"}),
        shared.failures_key: None,
        breaker.open_key: ("breaker open", {"until": now + 5, "failures": 5}),
        breaker.failures_key: None,
        breaker.probe_key: ("breaker probe", {"until": now + 5, "pid": 1}),
        cache_key(config, "state:beat"): ("telemetry", {"at": now, "outcome": "ok", "pid": 1}),
        cache_key(config, "state:last_renewal"): ("telemetry", renewal),
        cache_key(config, "state:last_error"): ("telemetry", renewal),
        cache_key(config, "state:last_api_call"): (
            "telemetry",
            {"at": now, "outcome": "ok", "status": 200, "latency": 0.1, "answered": True},
        ),
    }
    for name in ("requests", "renewals"):
        keys[cache_key(config, f"count:{name}:m{minute}")] = None
        keys[cache_key(config, f"count:{name}:h{hour}")] = None
    for account in ACCOUNTS:
        profile = {"profile": {"playerId": account, "riskScore": 12.5}, "fresh_until": now + 600}
        keys[services.profile_cache_key(config, 123, 456, account)] = ("profile", profile)
    return keys


def wrong_type(rng: random.Random, value: Any) -> Any:
    if isinstance(value, str):
        return rng.choice([5, None, ["x"], {"x": 1}, True])
    if isinstance(value, int | float):
        return rng.choice(["soon", None, [1], {"n": 1}, "1e300"])
    return rng.choice(["x", 7, 1.5])


class Hostile:
    """Seeded hostile values for one key."""

    def __init__(self, rng: random.Random, config: Config, other: Config) -> None:
        self.rng, self.config, self.other = rng, config, other

    def plain(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                rng.randint(-(10**6), 10**6),
                10**400,
                -1,
                rng.uniform(-1e300, 1e300),
                math.nan,
                math.inf,
                True,
                b"\x80\x04\x95" + rng.randbytes(rng.randint(0, 64)),
                "".join(rng.choice("bs1.AZaz09-_=") for _ in range(rng.randint(0, 200))),
                "bs1." + "A" * rng.choice([10, 1000, 300_000]),
                "x" * 300_000,
                "gAAAAA" + "".join(rng.choice("AZaz09-_=") for _ in range(rng.randint(0, 300))),  # 0.1's Fernet
                [rng.random() for _ in range(rng.randint(0, 5))],
                ("tuple", 1),
                {"until": "soon"},
                {"failures": 5},
                {"until": math.inf},
                {"profile": {"playerId": "player_1", "riskScore": 0}, "fresh_until": 10**10},
                {"v": 5, "e": "later"},
                {1, 2, 3},
                complex(1, 2),
                [[[[[]]]]],
            ]
        )

    def sealed(self, key: str, shape: Shape, keys: list[str]) -> Any:
        rng = self.rng
        kind, payload = shape
        mutation = rng.randrange(7)
        if mutation == 6:  # the payload itself, not sealed, a field of the wrong type at times
            return self.mutated(payload) if rng.random() < 0.5 else dict(payload)
        if mutation == 0:  # truncated
            whole = seal(self.config, payload, key=key, kind=kind)
            return whole[: rng.randrange(len(whole))]
        if mutation == 1:  # one character flipped
            whole = seal(self.config, payload, key=key, kind=kind)
            at = rng.randrange(4, len(whole))
            return whole[:at] + ("B" if whole[at] == "A" else "A") + whole[at + 1 :]
        if mutation == 2:  # sealed for another key of the app
            return seal(self.config, payload, key=rng.choice(keys), kind=kind) if len(keys) > 1 else None
        if mutation == 3:  # sealed as another kind
            return seal(self.config, payload, key=key, kind=kind + " (another)")
        if mutation == 4:  # sealed under a key this fleet does not hold
            return seal(self.other, payload, key=key, kind=kind)
        return seal(self.config, self.mutated(payload), key=key, kind=kind)

    def mutated(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload with one field of the wrong type, or missing."""
        field = self.rng.choice(sorted(payload))
        changed = dict(payload)
        if self.rng.random() < 0.3:
            del changed[field]
        else:
            changed[field] = wrong_type(self.rng, payload[field])
        return changed


def public_calls(rng: random.Random) -> list[tuple[str, Callable[[], Any]]]:
    config = get_config()

    def endpoint() -> int:
        request = RequestFactory().get("/bettorsense/health/", HTTP_AUTHORIZATION=f"Bearer {HEALTH_KEY}")
        status = health(request).status_code
        assert status in (200, 503)
        return status

    return [
        ("get_access_token", lambda: tokens.get_access_token()),
        ("get_player_risk_profile", lambda: get_player_risk_profile(rng.choice(ACCOUNTS), fresh=rng.random() < 0.5)),
        ("refresh_if_due", lambda: TokenManager(config).refresh_if_due()),
        ("health snapshot", take_snapshot),
        ("health endpoint", endpoint),
    ]


def test_hostile_cache_values_raise_only_typed_errors_and_the_fleet_recovers(configure, sandbox, settings):
    configure(HEALTH_TOKEN=HEALTH_KEY, TOKEN_WAIT_TIMEOUT=0.2, BACKOFF_MAX=0.05, BREAKER_COOLDOWN=0.2)
    config = get_config()
    other = Config(**{**config.__dict__, "encryption_keys": (OTHER_KEY,)})
    cache = caches[config.cache_alias]
    keys = app_keys(config)
    sealed_keys = [key for key, shape in keys.items() if shape is not None]
    lock_key = TokenManager(config).shared.lock_key
    rng = random.Random(SEED)
    hostile = Hostile(rng, config, other)
    untyped: list[str] = []
    ordered = sorted(keys)
    for round_number in range(ROUNDS):
        # Every key in turn, and one more at random: each key is hit ROUNDS / len(keys) times at least.
        for key in {ordered[round_number % len(ordered)], rng.choice(ordered)}:
            shape = keys[key]
            value = hostile.sealed(key, shape, sealed_keys) if shape and rng.random() < 0.5 else hostile.plain()
            ttl = LOCK_TTL if key == lock_key else rng.choice([None, 600])
            cache.set(key, value, ttl)
        tokens.reset_process_state()  # as a new process would: no memo, the breaker re-read
        breaker.reset_process_state()
        MEMO.clear()  # no profile memo either, so each round's planted profile entries are read
        for name, call in public_calls(rng):
            try:
                call()
            except BettorSenseError:
                pass
            except Exception as err:  # what the test looks for
                untyped.append(f"round {round_number}, {name}: {type(err).__name__}: {str(err)[:200]}")
    assert untyped == []

    time.sleep(max(LOCK_TTL, config.breaker_cooldown, config.backoff_max) + 0.1)  # the last lock's own expiry
    tokens.reset_process_state()
    for _ in range(RECOVERY_CALLS):
        try:
            token = tokens.get_access_token()
        except BettorSenseError:
            continue
        record, reason = sandbox.state.authenticate(token, config.audience)
        assert record is not None, reason
        break
    else:
        raise AssertionError(f"no valid token within {RECOVERY_CALLS} calls after the writes stopped")
    assert get_player_risk_profile("player_1", fresh=True).account_id == "player_1"


def test_the_fuzz_covers_every_sealed_kind_the_app_writes(configure, sandbox):
    """A new sealed kind must join :func:`app_keys`, or the fuzz above would not reach it."""
    kinds = {shape[0] for shape in app_keys(get_config()).values() if shape is not None}
    assert kinds == {"token", "backoff", "breaker open", "breaker probe", "telemetry", "profile"}
    entries.reset_warnings()
