"""The live check behind the health page's "Check now": get a token, then make one light API call.

The token comes from the fleet's cache when there is a valid one (the vendor asks for reuse), so
the probe only requests one when the fleet has none. The API call asks for the profile of
``PROBE_ACCOUNT_ID``, straight through :func:`bettorsense.client.get_json` (no profile cache, no
stale fallback). A 404 for that account also proves that the API answered.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from bettorsense import tokens
from bettorsense.client import api as client
from bettorsense.client.validation import account_id as valid_account_id
from bettorsense.conf import get_config
from bettorsense.exceptions import BettorSenseConfigurationError, BettorSenseError, ProfileUnavailable
from bettorsense.redaction import redact

logger = logging.getLogger(__name__)


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


def run_probe() -> ProbeResult:
    """Get a token, then ask the API for one profile; each step with its outcome and duration."""
    at = time.time()
    try:
        config = get_config()
    except BettorSenseConfigurationError as err:
        return ProbeResult(False, at, (ProbeStep("token", False, 0.0, f"Settings are invalid: {err}"),))
    secrets = (config.client_secret, config.health_token)
    steps: list[ProbeStep] = []

    started = time.monotonic()
    try:
        token = tokens.get_token_manager(config).get_token()
    except BettorSenseError as err:
        steps.append(ProbeStep("token", False, _elapsed_ms(started), redact(f"{type(err).__name__}: {err}", secrets)))
        logger.warning("Health probe: no token (%s)", type(err).__name__)
        return ProbeResult(False, at, tuple(steps))
    steps.append(
        ProbeStep(
            "token",
            True,
            _elapsed_ms(started),
            f"Token {token.fingerprint}, expires in {token.seconds_left():.0f} s.",
        )
    )

    started = time.monotonic()
    try:
        account = valid_account_id(config.probe_account_id)
        if config.bookmaker_id is None or config.sub_bookmaker_id is None:
            raise BettorSenseConfigurationError("BOOKMAKER_ID and SUB_BOOKMAKER_ID are not set.")
        client.get_json(
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
                account,
            ),
        )
    except ProfileUnavailable as err:
        detail = f"The API answered: {type(err).__name__} (HTTP {err.status_code}) for {account!r}."
        steps.append(ProbeStep("api", True, _elapsed_ms(started), detail))
    except (BettorSenseError, BettorSenseConfigurationError) as err:
        detail = redact(f"{type(err).__name__}: {err}", secrets)
        steps.append(ProbeStep("api", False, _elapsed_ms(started), detail))
    else:
        steps.append(ProbeStep("api", True, _elapsed_ms(started), f"The API answered 200 for {account!r}."))
    ok = all(step.ok for step in steps)
    logger.info("Health probe: %s", "ok" if ok else "failed")
    return ProbeResult(ok, at, tuple(steps))
