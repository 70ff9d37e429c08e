"""Token lifecycle: one OAuth 2.0 client-credentials token for the whole fleet.

Sportradar asks clients to reuse the access token and to request a new one only shortly before
the current one expires. Every process of a deployment (web workers, Celery workers, on many
machines) therefore shares one token through the Django cache:

* The hot path is a process-local memo: a dict-free attribute read and a clock comparison.
* The memo is re-checked against the shared cache every ``LOCAL_RECHECK`` seconds, and often
  while the token is inside its renewal window, so a renewal or invalidation done elsewhere is
  seen quickly.
* Celery beat calls :func:`refresh_if_due` every ``REFRESH_EVERY`` seconds. It renews once the
  token enters its renewal window, ``min(REFRESH_MARGIN, 10% of the lifetime)`` before expiry.
* Request paths renew lazily only in the second half of that window, so with beat running they
  never wait for a token request; with beat down they renew under the same single flight.
* Single flight: one ``cache.add`` lock for the fleet. Processes that hold a still-valid token
  keep using it while another renews; only a caller with no valid token waits, with a bound.
* After a failed request, a backoff kept in the shared cache stops the fleet from hammering the
  token endpoint; a still-valid token keeps being served meanwhile.
* If the cache itself fails, each process falls back to its own token and logs a warning.

The cached token is encrypted and authenticated with Fernet (see :mod:`bettorsense.tokens.crypto`).
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import requests
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from bettorsense import telemetry
from bettorsense.cache import CacheUnavailable
from bettorsense.client.http import get_session, parse_retry_after
from bettorsense.conf import Config, get_config
from bettorsense.exceptions import (
    AudienceNotAllowed,
    InvalidCredentials,
    MalformedTokenResponse,
    TokenBackoff,
    TokenEndpointUnreachable,
    TokenError,
    TokenRateLimited,
    TokenRequestRejected,
    TokenServerError,
    TokenTimeout,
    TokenWaitTimeout,
)
from bettorsense.redaction import redact
from bettorsense.tokens.shared import SharedTokenCache
from bettorsense.tokens.token import AccessToken, Tombstone

logger = logging.getLogger(__name__)

# Poll interval of a caller waiting for another process's renewal, and of the memo re-check
# while the token is inside its renewal window.
_WAIT_POLL = 0.05
_WINDOW_RECHECK = 0.5


@dataclass(frozen=True)
class TokenTiming:
    """When a token enters its renewal window, when lazy renewal starts, when it stops being sent."""

    renew_at: float
    lazy_renew_at: float
    usable_until: float

    @classmethod
    def of(cls, token: AccessToken, config: Config) -> TokenTiming:
        window = min(config.refresh_margin, 0.1 * token.lifetime)
        safety = min(config.expiry_safety, window / 4)
        return cls(
            renew_at=token.expires_at - window,
            lazy_renew_at=token.expires_at - window / 2,
            usable_until=token.expires_at - safety,
        )


class _Memo(NamedTuple):
    token: AccessToken
    timing: TokenTiming
    next_check: float


class RefreshOutcome(enum.StrEnum):
    NOT_DUE = "not-due"
    RENEWED = "renewed"
    BUSY = "busy"  # another process holds the renewal lock
    BACKOFF = "backoff"
    FAILED = "failed"
    CACHE_UNAVAILABLE = "cache-unavailable"


class TokenManager:
    """The token of one set of credentials, for this process, in front of the shared cache."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SharedTokenCache(config)
        self._memo: _Memo | None = None
        self._lock = threading.Lock()
        self._local_backoff_until = 0.0
        self._cache_warned_at = 0.0
        #: Token requests this process made, by origin; tests and the bench read it.
        self.fetch_counts: dict[str, int] = {}

    # --- public -------------------------------------------------------------------------------

    def get_token(self) -> AccessToken:
        """A token that is valid for at least the safety margin, from the memo whenever possible."""
        memo = self._memo
        if memo is not None and time.time() < memo.next_check:
            return memo.token
        return self._slow_path()

    def refresh_if_due(self) -> RefreshOutcome:
        """Beat's job: renew the shared token once it is inside its renewal window."""
        now = time.time()
        try:
            current = self.store.read_token()
            memo = self._memo
            if current is None and memo is not None and now < memo.timing.renew_at:
                # The cache lost the entry (eviction, restart): offer ours back rather than renew early,
                # as the request path does; renewing now would break the vendor's reuse rule.
                self.store.add_token(memo.token)
                current = self.store.read_token()
        except CacheUnavailable as err:
            self._warn_cache(err)
            return RefreshOutcome.CACHE_UNAVAILABLE
        if isinstance(current, AccessToken) and now < TokenTiming.of(current, self.config).renew_at:
            self._remember(current, now)
            return RefreshOutcome.NOT_DUE
        usable = current if isinstance(current, AccessToken) and self._usable(current, now) else None
        try:
            token, outcome = self._renew_shared(usable, origin="beat", wait=False)
        except TokenBackoff:
            return RefreshOutcome.BACKOFF
        except TokenError:
            return RefreshOutcome.FAILED
        except CacheUnavailable as err:
            self._warn_cache(err)
            return RefreshOutcome.CACHE_UNAVAILABLE
        if token is not None:
            self._remember(token, time.time())
        return outcome

    def force_refresh(self, *, origin: str = "manual") -> AccessToken:
        """Request a new token now, under the fleet lock, whatever the current one's age."""
        with self._lock:
            try:
                token, _ = self._renew_shared(None, origin=origin, wait=True, force=True)
            except CacheUnavailable as err:
                self._warn_cache(err)
                token = self._fetch(origin)
            if token is None:  # pragma: no cover - wait=True returns a token or raises
                raise TokenWaitTimeout("No token after waiting for the renewal.")
            self._remember(token, time.time())
            return token

    def invalidate(self, token_value: str) -> bool:
        """Forget this exact token, here and for the fleet, if it is still the current one.

        Called when the API answered 401 to it. Returns whether the shared entry was replaced.
        """
        memo = self._memo
        if memo is not None and memo.token.value == token_value:
            self._memo = None
        try:
            return self.store.tombstone_if_current(token_value)
        except CacheUnavailable as err:
            self._warn_cache(err)
            return False

    def peek(self) -> AccessToken | None:
        """The shared token if there is one (no request, no renewal); the memo when the cache fails."""
        try:
            current = self.store.read_token()
        except CacheUnavailable:
            memo = self._memo
            return memo.token if memo else None
        return current if isinstance(current, AccessToken) else None

    # --- internals ----------------------------------------------------------------------------

    def _usable(self, token: AccessToken, now: float) -> bool:
        return now < TokenTiming.of(token, self.config).usable_until

    def _remember(self, token: AccessToken, now: float, *, quiet_until: float = 0.0) -> None:
        """Memoise a token; ``quiet_until`` is when a fleet backoff ends (no point looking before)."""
        timing = TokenTiming.of(token, self.config)
        if now < timing.renew_at:
            next_check = min(now + self.config.local_recheck, timing.renew_at)
        elif now < timing.lazy_renew_at:
            next_check = min(now + min(self.config.local_recheck, _WINDOW_RECHECK), timing.lazy_renew_at)
        else:  # another process is renewing, or the fleet backs off: look again shortly
            next_check = min(max(now + _WAIT_POLL, quiet_until), timing.usable_until)
        self._memo = _Memo(token, timing, next_check)

    def _slow_path(self) -> AccessToken:
        now = time.time()
        memo = self._memo
        usable = memo.token if memo is not None and now < memo.timing.usable_until else None
        # One thread per process talks to the fleet; the others keep a still-valid token.
        if usable is not None:
            if not self._lock.acquire(blocking=False):
                return usable
        elif not self._lock.acquire(timeout=self.config.token_wait_timeout):
            raise TokenWaitTimeout("Timed out waiting for this process's token renewal.")
        try:
            memo = self._memo
            now = time.time()
            if memo is not None and now < memo.next_check:
                return memo.token
            return self._sync_with_fleet(now)
        finally:
            self._lock.release()

    def _sync_with_fleet(self, now: float) -> AccessToken:
        memo = self._memo
        local = memo.token if memo is not None and now < memo.timing.usable_until else None
        try:
            return self._sync_shared(local, now)
        except CacheUnavailable as err:
            self._warn_cache(err)
            return self._without_cache(local, now)

    def _sync_shared(self, local: AccessToken | None, now: float) -> AccessToken:
        shared = self.store.read_token()
        if isinstance(shared, Tombstone):
            if local is not None and local.fingerprint == shared.fingerprint:
                local = None
        elif isinstance(shared, AccessToken) and self._usable(shared, now):
            local = shared  # converge on the fleet's token
        elif shared is None and local is not None and now < TokenTiming.of(local, self.config).renew_at:
            # The cache lost the entry (eviction, restart): offer ours back rather than renew early.
            # Not inside the renewal window, where it would race the renewer's write of the new one.
            self.store.add_token(local)
        if local is not None and now < TokenTiming.of(local, self.config).lazy_renew_at:
            self._remember(local, now)
            return local
        token, outcome = self._renew_shared(local, origin="request", wait=True)
        if token is not None and token is local and not self._usable(token, time.time()):
            # ``local`` was usable when this call began; the cache round-trips since used up its
            # last moments. Never hand it out now: wait for the renewal (bounded) or fail.
            token, outcome = self._renew_shared(None, origin="request", wait=True)
        if token is None:  # pragma: no cover - wait=True returns a token or raises
            raise TokenWaitTimeout("No token after waiting for the renewal.")
        if outcome not in (RefreshOutcome.BACKOFF, RefreshOutcome.FAILED):
            self._remember(token, time.time())
        return token

    def _renew_shared(
        self, usable: AccessToken | None, *, origin: str, wait: bool, force: bool = False
    ) -> tuple[AccessToken | None, RefreshOutcome]:
        """Renew under the fleet lock. Returns a token (or ``usable``) and what happened."""
        deadline = time.time() + self.config.token_wait_timeout
        while True:
            backoff = self.store.read_backoff()
            if backoff is not None and not force:
                if usable is not None:
                    self._remember(usable, time.time(), quiet_until=backoff.until)
                    return usable, RefreshOutcome.BACKOFF
                raise TokenBackoff(
                    f"No valid token: the last token request failed ({backoff.error}); "
                    f"the fleet retries in {max(0.0, backoff.until - time.time()):.1f} s.",
                    detail=backoff.message,
                    retry_after=max(0.0, backoff.until - time.time()),
                )
            # Test before test-and-set: a failed add() is still a write, and a write storm at
            # renewal time makes the database cache drop the renewer's own write.
            owner = None if self.store.lock_holder() is not None else self.store.acquire_lock()
            if owner is not None:
                try:
                    if not force:
                        current = self.store.read_token()
                        now = time.time()
                        if isinstance(current, AccessToken) and (
                            now < TokenTiming.of(current, self.config).renew_at
                            or (origin == "request" and now < TokenTiming.of(current, self.config).lazy_renew_at)
                        ):
                            return current, RefreshOutcome.NOT_DUE
                    return self._fetch_and_publish(origin, usable)
                finally:
                    self.store.release_lock(owner)
            if not wait:
                return usable, RefreshOutcome.BUSY
            if usable is not None:
                return usable, RefreshOutcome.BUSY
            if time.time() >= deadline:
                raise TokenWaitTimeout("Timed out waiting for another process to renew the token.")
            time.sleep(_WAIT_POLL * (0.5 + random.random()))  # noqa: S311  (jitter, not crypto)
            current = self.store.read_token()
            if isinstance(current, AccessToken) and self._usable(current, time.time()):
                return current, RefreshOutcome.NOT_DUE

    def _fetch_and_publish(self, origin: str, usable: AccessToken | None) -> tuple[AccessToken, RefreshOutcome]:
        started = time.time()
        try:
            token = self._fetch(origin)
        except TokenError as err:
            delay = self._backoff_delay(err)
            self.store.write_backoff(err, delay)
            telemetry.record_token_failure(self.config, err, origin=origin, duration=time.time() - started)
            if usable is not None and self._usable(usable, time.time()):
                logger.warning(
                    "Token renewal failed (%s); still serving token %s, %.0f s left; next try in %.1f s",
                    type(err).__name__,
                    usable.fingerprint,
                    usable.seconds_left(),
                    delay,
                )
                self._remember(usable, time.time(), quiet_until=time.time() + delay)
                return usable, RefreshOutcome.FAILED
            raise
        try:
            if not self.store.write_token(token):
                logger.warning("Token %s renewed, but the cache did not keep it", token.fingerprint)
        except CacheUnavailable as err:
            self._warn_cache(err)  # the token is good: keep it in this process at least
        self.store.clear_backoff()
        telemetry.record_token_renewal(self.config, token, origin=origin, duration=time.time() - started)
        return token, RefreshOutcome.RENEWED

    def _backoff_delay(self, err: TokenError) -> float:
        failures = self.store.count_failure()
        delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(0, failures - 1))
        delay *= 0.8 + 0.4 * random.random()  # noqa: S311  (jitter, not crypto)
        if err.retry_after is not None:
            delay = max(delay, err.retry_after)
        return delay

    def _without_cache(self, local: AccessToken | None, now: float) -> AccessToken:
        """The cache failed: this process keeps or fetches a token of its own."""
        if local is not None and (
            now < TokenTiming.of(local, self.config).lazy_renew_at or now < self._local_backoff_until
        ):
            self._remember(local, now)
            return local
        if now < self._local_backoff_until:
            raise TokenBackoff(
                "No valid token: the cache is unavailable and the last token request failed.",
                retry_after=self._local_backoff_until - now,
            )
        try:
            token = self._fetch("request")
        except TokenError as err:
            self._local_backoff_until = now + max(self.config.backoff_base, err.retry_after or 0.0)
            if local is not None:
                self._remember(local, now)
                return local
            raise
        self._remember(token, time.time())
        return token

    def _warn_cache(self, err: CacheUnavailable) -> None:
        now = time.monotonic()
        if now - self._cache_warned_at > 30:
            self._cache_warned_at = now
            logger.warning("Token cache %r unavailable (%s); using a process-local token", self.config.cache_alias, err)

    @method_decorator(sensitive_variables())
    def _fetch(self, origin: str) -> AccessToken:
        """One token request, exactly as the vendor documents it (docs/vendor-api.md §2)."""
        config = self.config
        self.fetch_counts[origin] = self.fetch_counts.get(origin, 0) + 1
        sent_at = time.time()
        try:
            response = get_session().post(
                config.token_url,
                data={
                    "client_id": config.client_id,
                    "client_secret": config.client_secret,
                    "audience": config.audience,
                    "grant_type": "client_credentials",
                },
                timeout=config.timeout,
            )
        # "from None": the chained exception's frames hold the form body with the client secret, and
        # Django's technical 500 page shows every frame's locals.
        except requests.Timeout as err:
            raise TokenTimeout(f"Token request to {config.token_url} timed out ({type(err).__name__}).") from None
        except requests.RequestException as err:
            raise TokenEndpointUnreachable(
                f"Token request to {config.token_url} failed: {type(err).__name__}."
            ) from None
        token = parse_token_response(response, sent_at=sent_at, secrets=(config.client_secret,))
        logger.info(
            "Token renewed by %s in pid %s: %s, expires in %.0f s",
            origin,
            os.getpid(),
            token.fingerprint,
            token.lifetime,
        )
        return token


@sensitive_variables("secrets", "body", "response")
def parse_token_response(response: requests.Response, *, sent_at: float, secrets: tuple[str, ...] = ()) -> AccessToken:
    """Map a token endpoint response to a token or to the typed error that says what to check."""
    status = response.status_code
    body = _json_or_none(response)
    error, description = "", ""
    if isinstance(body, dict):
        error = str(body.get("error") or "")
        description = redact(str(body.get("error_description") or ""), secrets)
    detail = f"{error}: {description}".strip(": ") or None
    if status == 200:
        return _token_from_body(body, sent_at=sent_at)
    if status == 401:
        raise InvalidCredentials(
            "The token endpoint rejected the client credentials.", status_code=status, detail=detail
        )
    if status == 403:
        if error == "access_denied":
            raise AudienceNotAllowed(
                "The token endpoint refused the audience for this client.", status_code=status, detail=detail
            )
        raise InvalidCredentials("The token endpoint refused this client.", status_code=status, detail=detail)
    if status == 429:
        raise TokenRateLimited(
            "The token endpoint is rate limiting this client.",
            status_code=status,
            detail=detail,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        raise TokenRequestRejected("The token endpoint rejected the request.", status_code=status, detail=detail)
    raise TokenServerError("The token endpoint failed.", status_code=status, detail=detail)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@sensitive_variables("body", "value")
def _token_from_body(body: Any, *, sent_at: float) -> AccessToken:
    if not isinstance(body, dict):
        raise MalformedTokenResponse("The token endpoint answered 200 without a JSON object.", status_code=200)
    value = body.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise MalformedTokenResponse("The token response has no access_token string.", status_code=200)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not expires_in > 0:
        raise MalformedTokenResponse("The token response has no positive numeric expires_in.", status_code=200)
    # token_type is always sent by Auth0; if absent we assume Bearer, the only type the API takes.
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise MalformedTokenResponse("The token response's token_type is not Bearer.", status_code=200)
    return AccessToken(
        value=value,
        token_type="Bearer",  # noqa: S106  (the scheme name)
        issued_at=sent_at,
        expires_at=min(sent_at + float(expires_in), _jwt_expiry(value) or math.inf),
    )


def _jwt_expiry(value: str) -> float | None:
    """The ``exp`` claim if the token is a JWT, read unverified and used only to shorten the lifetime.

    Auth0 writes exp = floor(its clock) + expires_in, so counting from our send time alone can
    outlive the claim by up to a second, which a gateway that checks exp would refuse.
    """
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


# --- module API ----------------------------------------------------------------------------------

_managers: dict[int, tuple[Config, TokenManager]] = {}
_managers_lock = threading.Lock()


def get_token_manager(config: Config | None = None) -> TokenManager:
    """This process's manager for the configured credentials."""
    config = get_config() if config is None else config
    entry = _managers.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1]
    with _managers_lock:
        entry = _managers.get(id(config))
        if entry is None or entry[0] is not config:
            entry = (config, TokenManager(config))
            _managers[id(config)] = entry
        return entry[1]


def get_access_token() -> str:
    """A valid bearer token for the configured credentials, shared by the whole fleet."""
    return get_token_manager().get_token().value


def get_token() -> AccessToken:
    """Like :func:`get_access_token`, with the expiry and fingerprint."""
    return get_token_manager().get_token()


def refresh_if_due() -> RefreshOutcome:
    return get_token_manager().refresh_if_due()


def force_refresh(*, origin: str = "manual") -> AccessToken:
    return get_token_manager().force_refresh(origin=origin)


def invalidate(token_value: str) -> bool:
    return get_token_manager().invalidate(token_value)


def reset_process_state() -> None:
    """Forget every memoised token of this process (tests; after fork)."""
    global _managers_lock
    _managers.clear()
    _managers_lock = threading.Lock()


os.register_at_fork(after_in_child=reset_process_state)
