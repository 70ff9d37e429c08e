"""Token lifecycle: one OAuth 2.0 client-credentials token for the whole fleet.

Sportradar asks clients to reuse the access token and to request a new one only shortly before
the current one expires (docs/vendor-api.md §3). Every process of a deployment (web workers,
Celery workers, on many machines) therefore shares one token through the Django cache:

* The hot path is a process-local memo: an attribute read and a clock comparison.
* The memo is re-checked against the shared cache every ``LOCAL_RECHECK`` seconds, and often
  while the token is inside its renewal window, so a renewal or invalidation done elsewhere is
  seen quickly.
* Celery beat calls :func:`refresh_if_due` at the interval of its schedule; request paths renew
  lazily; :func:`force_refresh` renews at once. :mod:`bettorsense.tokens.decision` holds the rules
  of who renews when; this module reads the fleet's state, asks them, and acts.
* Single flight: one owner-checked lock in the cache for the fleet, one thread per process.
* After a failed request, a backoff kept in the shared cache stops the fleet from hammering the
  token endpoint; a still-valid token keeps being served meanwhile.
* If the cache itself fails, each process falls back to its own token and logs a warning.
* Every instant compared with an expiry or a backoff is on the token server's clock as this process
  estimates it (:class:`~bettorsense.tokens.clock.ServerClock`), so the fleet's entries mean the
  same to every process whatever its own clock says. A process that has not measured its offset
  lately (no token answer of its own) measures it before it decides, every ``CLOCK_PROBE_EVERY``.

The cached token is encrypted, authenticated and bound to its key (see :mod:`bettorsense.sealing`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import NamedTuple

from bettorsense import metrics, telemetry
from bettorsense.cache import CacheUnavailable, RateLimitedWarning
from bettorsense.conf import DEFAULT_CLIENT, Config, get_config
from bettorsense.exceptions import TokenBackoff, TokenError, TokenWaitTimeout
from bettorsense.registry import PerConfig
from bettorsense.text import shorten
from bettorsense.tokens.clock import SYSTEM_CLOCK, Clock, OffsetEstimate, ServerClock
from bettorsense.tokens.decision import (
    CACHE_DOWN,
    Action,
    Caller,
    Decision,
    Failure,
    Lock,
    Policy,
    RefreshOutcome,
    Situation,
    TokenTiming,
    after_failed_renewal,
    after_renewal,
    decide,
)
from bettorsense.tokens.endpoint import TokenEndpoint, parse_token_response
from bettorsense.tokens.shared import FleetState, SharedTokenCache
from bettorsense.tokens.token import AccessToken, Backoff

logger = logging.getLogger(__name__)

__all__ = ["Caller", "RefreshOutcome", "TokenManager", "TokenTiming", "parse_token_response"]


class _Memo(NamedTuple):
    token: AccessToken
    timing: TokenTiming
    next_check: float


class TokenManager:
    """The token of one set of credentials, for this process, in front of the shared cache."""

    def __init__(self, config: Config, *, clock: Clock = SYSTEM_CLOCK, endpoint: TokenEndpoint | None = None) -> None:
        self.config = config
        self.clock = clock if isinstance(clock, ServerClock) else ServerClock(clock, max_offset=config.clock_skew_max)
        self.policy = Policy.of(config)
        self.shared = SharedTokenCache(config, clock=self.clock)
        self.endpoint = endpoint if endpoint is not None else TokenEndpoint(config, self.clock)
        self.endpoint.server_clock = self.clock  # the endpoint's measurements correct this manager's clock
        self._clock_reported: tuple[OffsetEstimate | None, OffsetEstimate | None] = (None, None)
        self._clock_measured: float | None = None  # monotonic time of the last measurement
        self._clock_probe_lock = threading.Lock()
        self._memo: _Memo | None = None
        self._lock = threading.Lock()
        self._local_backoff: Backoff | None = None  # this process's own, while the cache is down
        self._warn_cache = RateLimitedWarning(logger, clock=clock.monotonic)
        #: Token requests this process made, by origin; tests and the bench read it.
        self.fetch_counts: dict[str, int] = {}

    # --- public -------------------------------------------------------------------------------

    def get_token(self) -> AccessToken:
        """A token that is valid for at least the safety margin, from the memo whenever possible."""
        memo = self._memo
        if memo is not None and self.clock.now() < memo.next_check:
            return memo.token
        return self._slow_path()

    def refresh_if_due(self) -> RefreshOutcome:
        """Beat's job: renew the shared token once it is inside its renewal window."""
        self._measure_clock_if_due()
        memo = self._memo
        try:
            decision = self._settle(Caller.BEAT, memo.token if memo is not None else None)
        except TokenBackoff:
            return RefreshOutcome.BACKOFF
        except TokenError:
            return RefreshOutcome.FAILED
        return decision.outcome or RefreshOutcome.NOT_DUE

    def force_refresh(self, *, origin: Caller | str = Caller.MANUAL) -> AccessToken:
        """Request a new token now, under the fleet lock, whatever the current one's age.

        ``origin`` is the label recorded for the renewal; the renewal is forced whoever asks.
        """
        with self._lock:
            decision = self._settle(Caller.MANUAL, None, origin=Caller(origin))
            return self._token_of(decision)

    def invalidate(self, token_value: str) -> bool:
        """Forget this exact token, here and for the fleet, if it is still the current one.

        Called when the API answered 401 to it. Returns whether the shared entry was replaced.
        """
        memo = self._memo
        if memo is not None and memo.token.value == token_value:
            self._memo = None
        try:
            return self.shared.tombstone_if_current(token_value)
        except CacheUnavailable as err:
            self._cache_failed(err)
            return False

    def peek(self) -> AccessToken | None:
        """The shared token if there is one (no request, no renewal); the memo when the cache fails."""
        try:
            current = self.shared.read_token()
        except CacheUnavailable:
            memo = self._memo
            return memo.token if memo else None
        return current if isinstance(current, AccessToken) else None

    # --- one thread per process talks to the fleet ----------------------------------------------

    def _slow_path(self) -> AccessToken:
        self._measure_clock_if_due()
        memo = self._memo
        usable = memo.token if memo is not None and self.clock.now() < memo.timing.usable_until else None
        # The other threads keep a still-valid token meanwhile; without one they wait, bounded.
        if usable is not None:
            if not self._lock.acquire(blocking=False):
                return usable
        elif not self._lock.acquire(timeout=self.config.token_wait_timeout):
            raise TokenWaitTimeout("Timed out waiting for this process's token renewal.")
        try:
            memo = self._memo
            if memo is not None and self.clock.now() < memo.next_check:
                return memo.token  # renewed by the thread this one waited for
            return self._token_of(self._settle(Caller.REQUEST, memo.token if memo is not None else None))
        finally:
            self._lock.release()

    # --- read, decide, act ----------------------------------------------------------------------

    def _settle(self, caller: Caller, local: AccessToken | None, *, origin: Caller | None = None) -> Decision:
        """Decide and act until the decision is final: a token to use, nothing to do, or an error."""
        origin = caller if origin is None else origin
        try:
            decision = self._with_the_fleet(caller, local, origin)
        except CacheUnavailable as err:
            self._cache_failed(err)
            decision = self._on_our_own(caller, local, origin)
        if decision.action is Action.USE and decision.token is not None and decision.look_again_at is not None:
            self._memo = _Memo(decision.token, self.policy.timing(decision.token), decision.look_again_at)
        return decision

    def _with_the_fleet(self, caller: Caller, local: AccessToken | None, origin: Caller) -> Decision:
        deadline = self.clock.monotonic() + self.config.token_wait_timeout
        waited = False
        while True:
            state = self.shared.read_state()
            decision = self._decide(caller, local, state, waited=waited)
            if decision.action is Action.RENEW:
                decision = self._renew_under_the_lock(caller, local, state, origin, waited=waited)
            if decision.action is Action.OFFER_BACK and decision.token is not None:
                self.shared.add_token(decision.token)
                local = None  # offered once; what the cache kept decides now
            elif decision.action is Action.WAIT:
                self._wait(decision, deadline)
                waited = True
            else:
                return self._conclude(decision)

    def _decide(
        self, caller: Caller, local: AccessToken | None, state: FleetState, *, waited: bool, lock: Lock | None = None
    ) -> Decision:
        if lock is None:
            lock = Lock.FREE if state.lock_holder is None else Lock.TAKEN
        situation = Situation(
            now=self.clock.now(),
            caller=caller,
            local=local,
            shared=state.token,
            backoff=state.backoff,
            lock=lock,
            waited=waited,
        )
        return decide(situation, self.policy)

    def _renew_under_the_lock(
        self, caller: Caller, local: AccessToken | None, state: FleetState, origin: Caller, *, waited: bool
    ) -> Decision:
        # The decision to renew saw the lock free: testing before the test-and-set matters, since a
        # failed add() is still a write, and a write storm at renewal time makes the database cache
        # drop the renewer's own write.
        owner = self.shared.renewal_lock.acquire()
        if owner is None:  # another caller took it since the state was read
            return self._decide(caller, local, state, waited=waited, lock=Lock.TAKEN)
        try:
            fresh = self.shared.read_state()
            if fresh.backoff is not None and state.backoff is None:
                # The caller that held the lock before us failed and set the backoff after our first
                # read: decide as the callers who saw it do, or every waiter would request once more.
                return self._decide(caller, local, fresh, waited=waited, lock=Lock.TAKEN)
            decision = self._decide(caller, local, fresh, waited=waited, lock=Lock.OURS)
            if decision.action is not Action.RENEW:
                return decision
            return self._renew(origin, decision.fallback)
        finally:
            self.shared.renewal_lock.release(owner)

    def _renew(self, origin: Caller, fallback: AccessToken | None) -> Decision:
        """Request a token for the fleet and publish it; on failure, set the fleet's backoff."""
        started = self.clock.monotonic()
        try:
            token = self._request_token(origin)
        except TokenError as err:
            delay = self._backoff_delay(err)
            self.shared.write_backoff(err, delay)
            telemetry.record_token_failure(
                self.config, err, origin=origin.value, duration=self.clock.monotonic() - started
            )
            now = self.clock.now()
            decision = after_failed_renewal(now, fallback, self.policy, quiet_until=now + delay)
            if decision.action is not Action.USE or fallback is None:
                raise
            logger.warning(
                "Token renewal failed (%s); still serving token %s, %.0f s left; next try in %.1f s",
                type(err).__name__,
                fallback.fingerprint,
                fallback.seconds_left(now),
                delay,
            )
            return decision
        self._publish(token)
        telemetry.record_token_renewal(
            self.config, token, origin=origin.value, duration=self.clock.monotonic() - started
        )
        return after_renewal(self.clock.now(), token, self.policy)

    def _publish(self, token: AccessToken) -> None:
        try:
            if not self.shared.write_token(token):
                logger.warning("Token %s renewed, but the cache did not keep it", token.fingerprint)
        except CacheUnavailable as err:
            self._cache_failed(err)  # the token is good: keep it in this process at least
        self.shared.clear_backoff()

    def _backoff_delay(self, err: TokenError) -> float:
        failures = self.shared.count_failure()
        delay = self.config.backoff_base * 2.0 ** min(max(0, failures - 1), 64)
        delay *= 0.8 + 0.4 * random.random()  # noqa: S311  (jitter, not crypto)
        if err.retry_after is not None:
            delay = max(delay, err.retry_after)
        # Capped after the jitter and after Retry-After: whatever the endpoint says, the fleet asks
        # again within BACKOFF_MAX.
        return min(delay, self.config.backoff_max)

    def _wait(self, decision: Decision, deadline: float) -> None:
        if self.clock.monotonic() >= deadline:
            raise TokenWaitTimeout("Timed out waiting for another process to renew the token.")
        poll = (decision.look_again_at or 0.0) - self.clock.now()
        self.clock.sleep(max(0.0, poll) * (0.5 + random.random()))  # noqa: S311  (jitter, not crypto)

    def _on_our_own(self, caller: Caller, local: AccessToken | None, origin: Caller) -> Decision:
        """The cache failed: this process keeps or requests a token of its own."""
        situation = Situation(
            now=self.clock.now(), caller=caller, local=local, shared=CACHE_DOWN, backoff=self._local_backoff
        )
        decision = decide(situation, self.policy)
        if decision.action is Action.RENEW:
            try:
                token = self._request_token(origin)
            except TokenError as err:
                now = self.clock.now()
                retry_in = min(max(self.config.backoff_base, err.retry_after or 0.0), self.config.backoff_max)
                message = shorten(str(err), 600)
                self._local_backoff = Backoff(until=now + retry_in, error=type(err).__name__, message=message)
                # quiet_until 0: look at the cache again soon, it may be back.
                decision = after_failed_renewal(now, decision.fallback, self.policy, quiet_until=0.0)
                if decision.action is not Action.USE:
                    raise
            else:
                decision = after_renewal(self.clock.now(), token, self.policy)
        return self._conclude(decision)

    def _conclude(self, decision: Decision) -> Decision:
        if decision.action is Action.FAIL:
            raise self._no_token(decision)
        if decision.offer_back and decision.token is not None:
            self.shared.add_token(decision.token)  # the cache lost the entry: ours, rather than a new one
        return decision

    def _no_token(self, decision: Decision) -> TokenBackoff:
        backoff = decision.backoff
        retry_after = max(0.0, backoff.until - self.clock.now()) if backoff is not None else None
        if decision.failure is Failure.LOCAL_BACKOFF or backoff is None:
            return TokenBackoff(
                "No valid token: the cache is unavailable and the last token request failed.",
                retry_after=retry_after,
            )
        # The backoff's message is our own error's text (which quotes the vendor, if it said anything):
        # part of the message, not a vendor detail.
        return TokenBackoff(
            f"No valid token: the last token request failed ({backoff.message or backoff.error}); "
            f"the fleet retries in {retry_after:.1f} s.",
            retry_after=retry_after,
        )

    def _token_of(self, decision: Decision) -> AccessToken:
        if decision.token is None:  # pragma: no cover - a request path or a manual renewal gets a token or raises
            raise TokenWaitTimeout("No token after waiting for the renewal.")
        return decision.token

    def _request_token(self, origin: Caller) -> AccessToken:
        self.fetch_counts[origin.value] = self.fetch_counts.get(origin.value, 0) + 1
        try:
            token = self.endpoint.request_token()
        except TokenError as err:
            metrics.token_request(self.config, origin.value, type(err).__name__)
            raise
        finally:
            self._clock_observed()  # a refusal's Date counts too
        metrics.token_request(self.config, origin.value, telemetry.OUTCOME_OK)
        logger.info(
            "Token renewed by %s in pid %s: %s, expires in %.0f s",
            origin.value,
            os.getpid(),
            token.fingerprint,
            token.lifetime,
        )
        return token

    # --- the offset to the token server's clock --------------------------------------------------

    def _measure_clock_if_due(self) -> None:
        """Probe the token server's clock unless a recent token answer (or probe) measured it."""
        every = self.config.clock_probe_every
        measured = self._clock_measured
        if every <= 0 or (measured is not None and self.clock.monotonic() - measured < every):
            return
        if not self._clock_probe_lock.acquire(blocking=False):
            return  # another thread probes; this one decides on the estimate it has
        try:
            # Counted as measured even if the probe fails: an unreachable server is not probed on every call.
            self._clock_measured = self.clock.monotonic()
            self.endpoint.probe_clock()
            self._clock_observed()
        finally:
            self._clock_probe_lock.release()

    def _clock_observed(self) -> None:
        """Report a new estimate (or a refused one) to the fleet's telemetry, once each."""
        current = (self.clock.estimate, self.clock.rejected)
        if current == self._clock_reported:
            return
        self._clock_reported = current
        self._clock_measured = self.clock.monotonic()
        estimate, rejected = current
        if rejected is not None:
            logger.warning(
                "Clock offset to the token server measured as %+.1f s, beyond CLOCK_SKEW_MAX (%g s): ignored",
                rejected.offset,
                self.config.clock_skew_max,
            )
        elif estimate is not None and abs(estimate.offset) > self.config.clock_skew_warn:
            logger.warning(
                "This machine's clock is %+.1f s off the token server's (±%.1f s); expiries are corrected",
                -estimate.offset,
                estimate.uncertainty,
            )
        telemetry.record_clock_offset(self.config, estimate, rejected=rejected)

    def _cache_failed(self, err: CacheUnavailable) -> None:
        self._warn_cache("Token cache %r unavailable (%s); using a process-local token", self.config.cache_alias, err)


# --- module API ----------------------------------------------------------------------------------

_managers: PerConfig[TokenManager] = PerConfig(TokenManager)


def get_token_manager(config: Config | None = None) -> TokenManager:
    """This process's manager for the configured credentials (the ``default`` set's by default)."""
    return _managers.get(get_config() if config is None else config)


def get_access_token(client: str = DEFAULT_CLIENT) -> str:
    """A valid bearer token for the credential set ``client``, shared by the whole fleet."""
    return get_token_manager(get_config(client)).get_token().value


def get_token(client: str = DEFAULT_CLIENT) -> AccessToken:
    """Like :func:`get_access_token`, with the expiry and fingerprint."""
    return get_token_manager(get_config(client)).get_token()


def refresh_if_due(client: str = DEFAULT_CLIENT) -> RefreshOutcome:
    return get_token_manager(get_config(client)).refresh_if_due()


def force_refresh(*, origin: Caller | str = Caller.MANUAL, client: str = DEFAULT_CLIENT) -> AccessToken:
    return get_token_manager(get_config(client)).force_refresh(origin=origin)


def invalidate(token_value: str, client: str = DEFAULT_CLIENT) -> bool:
    return get_token_manager(get_config(client)).invalidate(token_value)


def reset_process_state() -> None:
    """Forget every memoised token of this process (tests). A forked child forgets on its own."""
    _managers.clear()
