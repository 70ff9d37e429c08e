"""The live check behind the health page's "Check now": get a token, then make one light API call.

The token comes from the fleet's cache when there is a valid one (the vendor asks for reuse), so
the probe only requests one when the fleet has none. The API call asks for the profile of
``PROBE_ACCOUNT_ID``, straight through :func:`bettorsense.client.get_json` (no profile cache, no
stale fallback). A 404 for that account also proves that the API answered.

:func:`run_throttled_probe` is what the admin's button calls: at most one probe every
:data:`PROBE_EVERY` seconds for the whole fleet (a marker added to the shared cache); a press
inside that interval gets the last result, which is kept in the cache with the time it ran.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from bettorsense import telemetry, tokens
from bettorsense.cache import BestEffortCache, cache_key
from bettorsense.client import api
from bettorsense.client.validation import account_id as valid_account_id
from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
from bettorsense.exceptions import BettorSenseConfigurationError, BettorSenseError, ProfileUnavailable
from bettorsense.redaction import redact_for

logger = logging.getLogger(__name__)

#: Seconds between two probes, fleet-wide: each costs a vendor call, maybe a token request.
PROBE_EVERY = 5.0
_LAST_RESULT_TTL = 24 * 3600.0

_store = BestEffortCache("Health probe", logger)


@dataclass(frozen=True)
class ProbeStep:
    name: str  # "token" or "api"
    ok: bool
    duration_ms: float
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    at: float
    steps: tuple[ProbeStep, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "at": self.at, "steps": [asdict(step) for step in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(
            ok=bool(data["ok"]),
            at=float(data["at"]),
            steps=tuple(ProbeStep(**step) for step in data["steps"]),
        )


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def run_probe(client: str = DEFAULT_CLIENT) -> ProbeResult:
    """Get the credential set's token, then ask the API for one profile; each step with its outcome and duration."""
    at = time.time()
    try:
        config = get_config(client)
    except BettorSenseConfigurationError as err:
        return ProbeResult(False, at, (ProbeStep("token", False, 0.0, f"Settings are invalid: {err}"),))
    steps: list[ProbeStep] = []

    started = time.monotonic()
    try:
        token = tokens.get_token_manager(config).get_token()
    except BettorSenseError as err:
        steps.append(
            ProbeStep("token", False, _elapsed_ms(started), redact_for(config, f"{type(err).__name__}: {err}"))
        )
        logger.warning("Health probe: no token (%s)", type(err).__name__)
        return ProbeResult(False, at, tuple(steps))
    steps.append(
        ProbeStep(
            "token",
            True,
            _elapsed_ms(started),
            f"Token {token.fingerprint}, expires in {token.seconds_left(telemetry.server_now(config)):.0f} s.",
        )
    )

    started = time.monotonic()
    try:
        account = valid_account_id(config.probe_account_id)
        if config.bookmaker_id is None or config.sub_bookmaker_id is None:
            raise BettorSenseConfigurationError("BOOKMAKER_ID and SUB_BOOKMAKER_ID are not set.")
        api.get_json(
            config,
            (
                "v1",
                "Operator",
                "PlayerRiskProfile",
                "bookmakers",
                str(config.bookmaker_id),
                "sub-bookmakers",
                str(config.sub_bookmaker_id),
                "accountid",
            ),
            account_id=account,
        )
    except ProfileUnavailable as err:
        detail = f"The API answered: {type(err).__name__} (HTTP {err.status_code}) for {account!r}."
        steps.append(ProbeStep("api", True, _elapsed_ms(started), detail))
    except (BettorSenseError, BettorSenseConfigurationError) as err:
        detail = redact_for(config, f"{type(err).__name__}: {err}")
        steps.append(ProbeStep("api", False, _elapsed_ms(started), detail))
    else:
        steps.append(ProbeStep("api", True, _elapsed_ms(started), f"The API answered 200 for {account!r}."))
    ok = all(step.ok for step in steps)
    logger.info("Health probe: %s", "ok" if ok else "failed")
    return ProbeResult(ok, at, tuple(steps))


@dataclass(frozen=True)
class ThrottledProbe:
    """What a press of "Check now" got: a probe it ran, or the fleet's last one (None if unknown)."""

    result: ProbeResult | None
    ran: bool


def throttle_key(config: Config) -> str:
    return cache_key(config, "probe:throttle")


def _last_result_key(config: Config) -> str:
    return cache_key(config, "probe:last")


def run_throttled_probe(client: str = DEFAULT_CLIENT) -> ThrottledProbe:
    """:func:`run_probe`, unless a probe of this set ran less than PROBE_EVERY seconds ago."""
    try:
        config = get_config(client)
    except BettorSenseConfigurationError:
        return ThrottledProbe(run_probe(client), ran=True)  # it fails before any request, and says why
    # If the cache fails the probe runs anyway: that is when an operator needs it, and the
    # permission still stands between view-only staff and the vendor.
    if _store.add(config, throttle_key(config), time.time(), PROBE_EVERY, on_failure=True):
        result = run_probe(client)
        _store.set(config, _last_result_key(config), result.to_json(), _LAST_RESULT_TTL)
        return ThrottledProbe(result, ran=True)
    stored = _store.get(config, _last_result_key(config))
    try:
        last = ProbeResult.from_json(stored) if isinstance(stored, dict) else None
    except (KeyError, TypeError, ValueError):  # an entry of another version, or corrupt
        last = None
    return ThrottledProbe(last, ran=False)
