"""Put the integration into each health state, through the code paths that really lead there.

Each function takes the ``configure`` fixture's callable and the sandbox, and returns the status
the health rules should report. Used by the endpoint, admin, command, leak and browser tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

from bettorsense import beat, tasks, tokens
from bettorsense.cache import cache_key
from bettorsense.client.breaker import get_breaker
from bettorsense.conf import get_config
from bettorsense.exceptions import AccessDenied, ServiceUnavailable, TokenError
from bettorsense.sandbox import Fault
from bettorsense.sealing import seal
from bettorsense.services import get_player_risk_profile
from bettorsense.sync import run_sync
from bettorsense.tokens.shared import SharedTokenCache
from bettorsense.tokens.token import AccessToken

Configure = Callable[..., dict[str, Any]]

DEAD_REDIS = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bettorsense-health-tests"}


def must_fail(call: Callable[[], object], error: type[Exception], message: str) -> None:
    """Run ``call``, which a planted fault makes raise ``error``; fail the set-up if it does not."""
    try:
        call()
    except error:
        return
    raise AssertionError(message)  # pragma: no cover - the fault makes it fail


def beat_runs() -> str:
    """What Celery beat does at each tick of its schedule: the real task, run in this process."""
    return tasks.refresh_token()


def healthy(configure: Configure, sandbox: Any, settings: Any) -> str:
    """A set-up with no issue: profiles in a cache of their own (bettorsense.W020 otherwise)."""
    settings.CACHES = {**settings.CACHES, "profiles": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    configure(PROFILE_CACHE_ALIAS="profiles")
    beat_runs()
    get_player_risk_profile("player_1", fresh=True)
    return "ok"


def token_endpoint_down(configure: Configure, sandbox: Any, settings: Any) -> str:
    """No token in the fleet's cache, and the token endpoint answers 503."""
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    beat_runs()  # beat tries, fails, and the fleet backs off
    return "down"


def token_endpoint_closed(configure: Configure, sandbox: Any, settings: Any) -> str:
    """TOKEN_URL points at a closed port and there is no token; the fleet backs off (for 30 s or more)."""
    configure(TOKEN_URL="http://127.0.0.1:9/oauth/token", BACKOFF_BASE=30)
    beat_runs()
    return "down"


def renewal_failing(configure: Configure, sandbox: Any, settings: Any) -> str:
    """A valid token, but the last renewal failed."""
    beat_runs()
    sandbox.state.add_fault(Fault(target="token", kind="status", status=503))
    must_fail(lambda: tokens.force_refresh(origin="manual"), TokenError, "the renewal should have failed")
    beat_runs()  # beat keeps ticking: the token is still valid (not due)
    return "degraded"


def beat_stale(configure: Configure, sandbox: Any, settings: Any) -> str:
    """A token, but beat's last run is four intervals old."""
    config = get_config()
    tokens.get_token()
    old = time.time() - 4 * (beat.refresh_interval() or config.refresh_margin)
    key = cache_key(config, "state:beat")
    entry = seal(config, {"at": old, "outcome": "not-due", "pid": 1}, key=key, kind="telemetry")
    caches[config.cache_alias].set(key, entry, 3600)
    return "degraded"


def beat_never_ran(configure: Configure, sandbox: Any, settings: Any) -> str:
    tokens.get_token()
    return "degraded"


def token_in_safety_margin(configure: Configure, sandbox: Any, settings: Any) -> str:
    """The cached token has 1 s left: inside the safety margin, so it is no longer sent."""
    config = get_config()
    beat_runs()
    now = time.time()
    token = AccessToken(value=sandbox_token(sandbox), token_type="Bearer", issued_at=now - 599, expires_at=now + 1)
    SharedTokenCache(config).write_token(token)
    return "degraded"


def breaker_open(configure: Configure, sandbox: Any, settings: Any) -> str:
    configure(BREAKER_THRESHOLD=1, MAX_RETRIES=0)
    beat_runs()
    sandbox.state.add_fault(Fault(target="api", kind="status", status=503))
    must_fail(
        lambda: get_player_risk_profile("player_2", fresh=True), ServiceUnavailable, "the API call should have failed"
    )
    sandbox.state.clear_faults()
    return "down"


def breaker_half_open(configure: Configure, sandbox: Any, settings: Any) -> str:
    """The breaker opened, and its cool-down is over: the next call probes the API."""
    beat_runs()
    config = get_config()
    breaker = get_breaker(config)
    opened = seal(config, {"until": time.time() - 1, "failures": 5}, key=breaker.open_key, kind="breaker open")
    caches[config.cache_alias].set(breaker.open_key, opened, 3600)
    return "degraded"


def credentials_missing(configure: Configure, sandbox: Any, settings: Any) -> str:
    configure(CLIENT_SECRET="")
    return "down"


def settings_invalid(configure: Configure, sandbox: Any, settings: Any) -> str:
    configure(ENVIRONMENT="staging")
    return "down"


def cache_not_shared(configure: Configure, sandbox: Any, settings: Any) -> str:
    settings.CACHES = {**settings.CACHES, "local": LOCMEM}
    configure(CACHE_ALIAS="local")
    beat_runs()
    return "degraded"


def cache_unreachable(configure: Configure, sandbox: Any, settings: Any) -> str:
    settings.CACHES = {**settings.CACHES, "dead": DEAD_REDIS}
    configure(CACHE_ALIAS="dead")
    tokens.get_token()  # the process falls back to a token of its own
    return "degraded"


def sync_failed(configure: Configure, sandbox: Any, settings: Any) -> str:
    """The token is fine, but the last sync of the local store failed (the batch endpoint refused it)."""
    beat_runs()
    sandbox.state.add_fault(Fault(target="batch", kind="status", status=403))
    must_fail(lambda: run_sync(full=True), AccessDenied, "the sync should have failed")
    sandbox.state.clear_faults()
    return "degraded"


def error_resolved(configure: Configure, sandbox: Any, settings: Any) -> str:
    """A renewal failed (throttled), then the next one succeeded: the last error is resolved."""
    beat_runs()
    sandbox.state.add_fault(Fault(target="token", kind="status", status=429))
    must_fail(lambda: tokens.force_refresh(origin="manual"), TokenError, "the renewal should have failed")
    sandbox.state.clear_faults()
    tokens.force_refresh(origin="manual")  # a manual renewal does not wait out the backoff
    beat_runs()
    return "ok"


def sandbox_token(sandbox: Any) -> str:
    """A real token from the sandbox, outside the app (so the app's counters do not see it)."""
    import requests

    response = requests.post(
        sandbox.token_url,
        data={
            "client_id": get_config().client_id,
            "client_secret": get_config().client_secret,
            "audience": get_config().audience,
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


STATES: dict[str, Callable[[Configure, Any, Any], str]] = {
    "healthy": healthy,
    "token-endpoint-down": token_endpoint_down,
    "token-endpoint-closed": token_endpoint_closed,
    "renewal-failing": renewal_failing,
    "beat-stale": beat_stale,
    "beat-never-ran": beat_never_ran,
    "token-in-safety-margin": token_in_safety_margin,
    "breaker-open": breaker_open,
    "breaker-half-open": breaker_half_open,
    "credentials-missing": credentials_missing,
    "settings-invalid": settings_invalid,
    "cache-not-shared": cache_not_shared,
    "cache-unreachable": cache_unreachable,
    "sync-failed": sync_failed,
    "error-resolved": error_resolved,
}


def cached_token_values() -> set[str]:
    """Every token value this process or the cache holds now (for leak searches)."""
    values: set[str] = set()
    try:
        config = get_config()
    except Exception:  # settings-invalid
        return values
    try:
        current = SharedTokenCache(config).read_token()
    except Exception:  # cache unreachable
        current = None
    if isinstance(current, AccessToken):
        values.add(current.value)
    memo = tokens.get_token_manager(config)._memo
    if memo is not None:
        values.add(memo.token.value)
    return values
