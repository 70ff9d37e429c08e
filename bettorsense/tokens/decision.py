"""What to do about the token next, as a pure function of what is known at one moment.

:func:`decide` reads no clock and no cache. :class:`~bettorsense.tokens.manager.TokenManager` reads
the fleet's state, asks, acts, and asks again whenever the state has moved (after it took the
renewal lock, after it waited for another caller's renewal). tests/test_token_decision.py holds one
row per rule.

The rules, by who asks (docs/vendor-api.md §3 for why a token is renewed only near its expiry):

* Celery beat (:attr:`Caller.BEAT`) renews from the start of the renewal window and never waits.
* A request path (:attr:`Caller.REQUEST`) renews only in the window's second half, so that with
  beat running it never waits for a token request; without a usable token it waits, bounded,
  for another caller's renewal.
* A manual renewal (:attr:`Caller.MANUAL`, ``force_refresh``) renews whatever the token's age,
  despite a backoff.
* A still-usable token is served while another caller renews, during a backoff, and when the
  renewal failed; a token is never sent within its safety margin.
* A cache that lost the entry gets the caller's token back rather than a new one, outside the
  renewal window only (inside it, the put-back would race the renewer's write).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Protocol

from bettorsense.tokens.token import AccessToken, Backoff, Tombstone

#: A caller waiting for another's renewal looks again this often; so does the memo of a token in
#: the second half of its renewal window.
WAIT_POLL: Final = 0.05
#: In the first half of the renewal window the memo is checked against the fleet at least this often.
WINDOW_RECHECK: Final = 0.5


class Caller(enum.StrEnum):
    """Who asks for a token; the value is the origin recorded for a renewal in logs and telemetry."""

    BEAT = "beat"
    REQUEST = "request"
    MANUAL = "manual"


class RefreshOutcome(enum.StrEnum):
    NOT_DUE = "not-due"
    RENEWED = "renewed"
    BUSY = "busy"  # another process holds the renewal lock
    BACKOFF = "backoff"
    FAILED = "failed"
    CACHE_UNAVAILABLE = "cache-unavailable"


class Lock(enum.Enum):
    """The fleet's renewal lock, as the asking caller sees it."""

    FREE = "free"
    TAKEN = "taken"  # by another caller
    OURS = "ours"


class CacheDown(enum.Enum):
    """The shared entry could not be read: the cache is unavailable."""

    CACHE_DOWN = "cache-down"


CACHE_DOWN: Final = CacheDown.CACHE_DOWN


class Action(enum.Enum):
    USE = "use"  # serve ``token``
    RENEW = "renew"  # request a token: under the fleet's lock, or alone when the cache is down
    WAIT = "wait"  # another caller renews: look again at ``look_again_at``
    FAIL = "fail"  # no token to serve: ``failure`` says why
    OFFER_BACK = "offer-back"  # put ``token`` back into the cache that lost it, then decide again
    STAND_BY = "stand-by"  # nothing to do now, and no token to hand out: ``outcome`` says why


class Failure(enum.Enum):
    FLEET_BACKOFF = "fleet-backoff"  # the fleet's last token request failed
    LOCAL_BACKOFF = "local-backoff"  # the cache is down and this process's last token request failed


class TimingSettings(Protocol):
    @property
    def refresh_margin(self) -> float: ...

    @property
    def expiry_safety(self) -> float: ...


@dataclass(frozen=True)
class TokenTiming:
    """When a token enters its renewal window, when lazy renewal starts, when it stops being sent."""

    renew_at: float
    lazy_renew_at: float
    usable_until: float

    @classmethod
    def of(cls, token: AccessToken, settings: TimingSettings) -> TokenTiming:
        window = min(settings.refresh_margin, 0.1 * token.lifetime)
        safety = min(settings.expiry_safety, window / 4)
        return cls(
            renew_at=token.expires_at - window,
            lazy_renew_at=token.expires_at - window / 2,
            usable_until=token.expires_at - safety,
        )


@dataclass(frozen=True)
class Policy:
    """The settings the rules depend on (see ``bettorsense.conf``)."""

    refresh_margin: float
    expiry_safety: float
    local_recheck: float

    @classmethod
    def of(cls, settings: PolicySettings) -> Policy:
        return cls(settings.refresh_margin, settings.expiry_safety, settings.local_recheck)

    def timing(self, token: AccessToken) -> TokenTiming:
        return TokenTiming.of(token, self)

    def usable(self, token: AccessToken | None, now: float) -> bool:
        return token is not None and now < self.timing(token).usable_until


class PolicySettings(TimingSettings, Protocol):
    @property
    def local_recheck(self) -> float: ...


@dataclass(frozen=True)
class Situation:
    """Everything the rules look at, as read at ``now``."""

    now: float
    caller: Caller
    local: AccessToken | None = None  # this process's memoised token, usable or not
    shared: AccessToken | Tombstone | CacheDown | None = None  # the fleet's entry
    backoff: Backoff | None = None  # the fleet's; this process's own when the cache is down
    lock: Lock = Lock.FREE
    waited: bool = False  # this caller already waited for another caller's renewal


@dataclass(frozen=True)
class Decision:
    action: Action
    outcome: RefreshOutcome | None = None
    token: AccessToken | None = None  # USE: the token to serve; OFFER_BACK: the one to put back
    offer_back: bool = False  # USE: put the token back into the cache first
    fallback: AccessToken | None = None  # RENEW: served if the request fails while still usable
    look_again_at: float | None = None  # USE: the memo's next check; WAIT: the next look; FAIL: retry
    failure: Failure | None = None
    backoff: Backoff | None = None  # FAIL: the backoff that stops this caller


def decide(situation: Situation, policy: Policy) -> Decision:
    """What to do next; the rules are in the module docstring."""
    if situation.shared is CACHE_DOWN:
        return _without_cache(situation, policy)
    if situation.lock is Lock.OURS:
        return _holding_the_lock(situation, policy)
    if situation.caller is Caller.BEAT:
        return _for_beat(situation, policy)
    if situation.caller is Caller.MANUAL:
        return _for_manual(situation, policy)
    return _for_request(situation, policy)


def next_look(now: float, token: AccessToken, policy: Policy, *, quiet_until: float = 0.0) -> float:
    """When the memo of ``token`` is checked against the fleet again.

    ``quiet_until`` is when a backoff ends: there is no point in looking before.
    """
    timing = policy.timing(token)
    if now < timing.renew_at:
        return min(now + policy.local_recheck, timing.renew_at)
    if now < timing.lazy_renew_at:
        return min(now + min(policy.local_recheck, WINDOW_RECHECK), timing.lazy_renew_at)
    # Another caller is renewing, or the fleet backs off: look again shortly.
    return min(max(now + WAIT_POLL, quiet_until), timing.usable_until)


def after_failed_renewal(now: float, fallback: AccessToken | None, policy: Policy, *, quiet_until: float) -> Decision:
    """The token request failed: serve the fallback while it is still usable; FAIL means re-raise.

    The fallback was usable when the renewal was decided; the request may have used up its last
    moments. ``quiet_until`` is when the next request may be made (0: look at the fleet soon).
    """
    if fallback is not None and policy.usable(fallback, now):
        return _use(now, fallback, RefreshOutcome.FAILED, policy, quiet_until=quiet_until)
    return Decision(Action.FAIL, RefreshOutcome.FAILED)


def after_renewal(now: float, token: AccessToken, policy: Policy) -> Decision:
    return _use(now, token, RefreshOutcome.RENEWED, policy)


# --- the rules -----------------------------------------------------------------------------------


def _use(
    now: float,
    token: AccessToken,
    outcome: RefreshOutcome,
    policy: Policy,
    *,
    quiet_until: float = 0.0,
    offer_back: bool = False,
) -> Decision:
    look = next_look(now, token, policy, quiet_until=quiet_until)
    return Decision(Action.USE, outcome, token=token, offer_back=offer_back, look_again_at=look)


def _backing_off(situation: Situation) -> Backoff | None:
    backoff = situation.backoff
    return backoff if backoff is not None and situation.now < backoff.until else None


def _shared_token(situation: Situation) -> AccessToken | None:
    return situation.shared if isinstance(situation.shared, AccessToken) else None


def _request_candidate(situation: Situation, policy: Policy) -> AccessToken | None:
    """The token a request path would serve: the fleet's if usable, else its own unless refused."""
    now, shared = situation.now, situation.shared
    local = situation.local if policy.usable(situation.local, now) else None
    if isinstance(shared, Tombstone):
        return None if local is not None and local.fingerprint == shared.fingerprint else local
    if isinstance(shared, AccessToken) and policy.usable(shared, now):
        return shared  # converge on the fleet's token
    return local


def _for_request(situation: Situation, policy: Policy) -> Decision:
    now = situation.now
    shared = _shared_token(situation)
    if situation.waited:
        # Whatever usable token the renewal we waited for left is good: asking again would renew twice.
        if shared is not None and policy.usable(shared, now):
            return _use(now, shared, RefreshOutcome.NOT_DUE, policy)
        return _renewal(situation, None, policy)
    local = situation.local if policy.usable(situation.local, now) else None
    if situation.shared is None and local is not None and now < policy.timing(local).renew_at:
        return _use(now, local, RefreshOutcome.NOT_DUE, policy, offer_back=True)
    candidate = _request_candidate(situation, policy)
    if candidate is not None and now < policy.timing(candidate).lazy_renew_at:
        return _use(now, candidate, RefreshOutcome.NOT_DUE, policy)
    return _renewal(situation, candidate, policy)


def _for_beat(situation: Situation, policy: Policy) -> Decision:
    now, local = situation.now, situation.local
    if situation.shared is None and local is not None and now < policy.timing(local).renew_at:
        # Renewing now would break the vendor's reuse rule while every process holds a valid token.
        return Decision(Action.OFFER_BACK, token=local)
    shared = _shared_token(situation)
    if shared is not None and now < policy.timing(shared).renew_at:
        return _use(now, shared, RefreshOutcome.NOT_DUE, policy)
    return _renewal(situation, shared if policy.usable(shared, now) else None, policy)


def _for_manual(situation: Situation, policy: Policy) -> Decision:
    shared = _shared_token(situation)
    if situation.waited and shared is not None and policy.usable(shared, situation.now):
        return _use(situation.now, shared, RefreshOutcome.NOT_DUE, policy)  # renewed by the one we waited for
    return _renewal(situation, None, policy)


def _renewal(situation: Situation, fallback: AccessToken | None, policy: Policy) -> Decision:
    """A renewal is due: unless the fleet backs off or another caller is at it."""
    now = situation.now
    backoff = _backing_off(situation)
    if backoff is not None and situation.caller is not Caller.MANUAL:
        if fallback is not None:
            return _use(now, fallback, RefreshOutcome.BACKOFF, policy, quiet_until=backoff.until)
        return Decision(
            Action.FAIL,
            RefreshOutcome.BACKOFF,
            look_again_at=backoff.until,
            failure=Failure.FLEET_BACKOFF,
            backoff=backoff,
        )
    if situation.lock is Lock.TAKEN:
        if fallback is not None:
            return _use(now, fallback, RefreshOutcome.BUSY, policy)
        if situation.caller is Caller.BEAT:
            return Decision(Action.STAND_BY, RefreshOutcome.BUSY)
        return Decision(Action.WAIT, look_again_at=now + WAIT_POLL)
    return Decision(Action.RENEW, fallback=fallback)


def _holding_the_lock(situation: Situation, policy: Policy) -> Decision:
    """With the lock: the entry read since may show that another caller renewed meanwhile."""
    now, caller = situation.now, situation.caller
    if caller is Caller.MANUAL:
        return Decision(Action.RENEW)
    shared = _shared_token(situation)
    if shared is not None:
        timing = policy.timing(shared)
        not_due_until = timing.renew_at if caller is Caller.BEAT else timing.lazy_renew_at
        if now < not_due_until:
            return _use(now, shared, RefreshOutcome.NOT_DUE, policy)
    if caller is Caller.BEAT:
        fallback = shared if policy.usable(shared, now) else None
    else:
        fallback = None if situation.waited else _request_candidate(situation, policy)
    return Decision(Action.RENEW, fallback=fallback)


def _without_cache(situation: Situation, policy: Policy) -> Decision:
    """The cache is down: a request path keeps or requests a token of this process's own."""
    now, caller = situation.now, situation.caller
    if caller is Caller.BEAT:
        return Decision(Action.STAND_BY, RefreshOutcome.CACHE_UNAVAILABLE)
    if caller is Caller.MANUAL:
        return Decision(Action.RENEW)
    local = situation.local if policy.usable(situation.local, now) else None
    backoff = _backing_off(situation)
    if local is not None and (now < policy.timing(local).lazy_renew_at or backoff is not None):
        return _use(now, local, RefreshOutcome.NOT_DUE if backoff is None else RefreshOutcome.BACKOFF, policy)
    if backoff is not None:
        return Decision(
            Action.FAIL,
            RefreshOutcome.BACKOFF,
            look_again_at=backoff.until,
            failure=Failure.LOCAL_BACKOFF,
            backoff=backoff,
        )
    return Decision(Action.RENEW, fallback=local)
