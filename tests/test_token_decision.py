"""The token rules as a pure function: one row per rule, no cache, no clock, no HTTP."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bettorsense.tokens.decision import (
    CACHE_DOWN,
    WAIT_POLL,
    WINDOW_RECHECK,
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
    next_look,
)
from bettorsense.tokens.token import AccessToken, Backoff, Tombstone

NOW = 1_800_000_000.0
LIFETIME = 600.0
# A 600 s token: renewal window 30 s (min(30, 10%)), lazy half 15 s, safety margin 5 s (min(5, 30/4)).
POLICY = Policy(refresh_margin=30.0, expiry_safety=5.0, local_recheck=10.0)


def token(name: str, seconds_left: float) -> AccessToken:
    expires_at = NOW + seconds_left
    return AccessToken(
        value=f"{name}-value", token_type="Bearer", issued_at=expires_at - LIFETIME, expires_at=expires_at
    )


FRESH = token("fresh", 300)  # before its renewal window
OTHER_FRESH = token("other-fresh", 400)
WINDOW = token("window", 20)  # in the first half of the window: beat's to renew
LAZY = token("lazy", 10)  # in the second half: a request path renews too
UNUSABLE = token("unusable", 3)  # inside the safety margin: never sent again
EXPIRED = token("expired", -1)
BACKOFF = Backoff(until=NOW + 12, error="TokenServerError", message="The token endpoint failed.")
OVER = Backoff(until=NOW - 1, error="TokenServerError", message="The token endpoint failed.")

NAMES = {
    t.value: name
    for name, t in [
        ("FRESH", FRESH),
        ("OTHER_FRESH", OTHER_FRESH),
        ("WINDOW", WINDOW),
        ("LAZY", LAZY),
        ("UNUSABLE", UNUSABLE),
        ("EXPIRED", EXPIRED),
    ]
}


def name(t: AccessToken | None) -> str | None:
    return None if t is None else NAMES[t.value]


def ask(caller: Caller, **state: object) -> Situation:
    return Situation(now=NOW, caller=caller, **state)  # type: ignore[arg-type]


def summary(decision: Decision) -> tuple[object, ...]:
    """The decision's action, outcome and tokens by name, plus any flag that is set."""
    shown: list[object] = [decision.action, decision.outcome, name(decision.token or decision.fallback)]
    if decision.offer_back:
        shown.append("offer-back")
    if decision.failure is not None:
        shown.append(decision.failure)
    return tuple(shown)


USE, RENEW, WAIT, FAIL, OFFER_BACK, STAND_BY = (
    Action.USE,
    Action.RENEW,
    Action.WAIT,
    Action.FAIL,
    Action.OFFER_BACK,
    Action.STAND_BY,
)
NOT_DUE, BUSY, IN_BACKOFF = RefreshOutcome.NOT_DUE, RefreshOutcome.BUSY, RefreshOutcome.BACKOFF
REQUEST, BEAT, MANUAL = Caller.REQUEST, Caller.BEAT, Caller.MANUAL

RULES = [
    # --- a request path ----------------------------------------------------------------------------
    pytest.param(ask(REQUEST, shared=FRESH), (USE, NOT_DUE, "FRESH"), id="request-uses-the-fleet-token"),
    pytest.param(
        ask(REQUEST, local=FRESH, shared=OTHER_FRESH),
        (USE, NOT_DUE, "OTHER_FRESH"),
        id="request-converges-on-the-fleet-token",
    ),
    pytest.param(
        ask(REQUEST, shared=WINDOW), (USE, NOT_DUE, "WINDOW"), id="request-leaves-the-window-first-half-to-beat"
    ),
    pytest.param(ask(REQUEST, shared=LAZY), (RENEW, None, "LAZY"), id="request-renews-in-the-second-half"),
    pytest.param(
        ask(REQUEST, shared=LAZY, lock=Lock.TAKEN),
        (USE, BUSY, "LAZY"),
        id="request-keeps-a-usable-token-while-another-renews",
    ),
    pytest.param(
        ask(REQUEST, shared=LAZY, backoff=BACKOFF),
        (USE, IN_BACKOFF, "LAZY"),
        id="request-keeps-a-usable-token-during-a-backoff",
    ),
    pytest.param(ask(REQUEST), (RENEW, None, None), id="request-without-any-token-renews"),
    pytest.param(ask(REQUEST, lock=Lock.TAKEN), (WAIT, None, None), id="request-without-a-token-waits-for-the-renewer"),
    pytest.param(
        ask(REQUEST, backoff=BACKOFF), (FAIL, IN_BACKOFF, None, Failure.FLEET_BACKOFF), id="request-no-token-backoff"
    ),
    pytest.param(ask(REQUEST, backoff=OVER), (RENEW, None, None), id="request-after-the-backoff-renews"),
    pytest.param(
        ask(REQUEST, local=FRESH), (USE, NOT_DUE, "FRESH", "offer-back"), id="cache-lost-the-entry-gets-ours-back"
    ),
    pytest.param(
        ask(REQUEST, local=WINDOW),
        (USE, NOT_DUE, "WINDOW"),
        id="cache-lost-the-entry-inside-the-window-no-put-back",
    ),
    pytest.param(ask(REQUEST, local=LAZY), (RENEW, None, "LAZY"), id="cache-lost-the-entry-lazy-half-renews"),
    pytest.param(
        ask(REQUEST, local=FRESH, shared=Tombstone(FRESH.fingerprint)),
        (RENEW, None, None),
        id="request-drops-the-token-the-api-refused",
    ),
    pytest.param(
        ask(REQUEST, local=FRESH, shared=Tombstone(OTHER_FRESH.fingerprint)),
        (USE, NOT_DUE, "FRESH"),
        id="request-ignores-the-tombstone-of-another-token",
    ),
    pytest.param(ask(REQUEST, shared=UNUSABLE), (RENEW, None, None), id="request-never-sends-within-the-safety-margin"),
    pytest.param(ask(REQUEST, local=EXPIRED, shared=EXPIRED), (RENEW, None, None), id="request-expired-token-renews"),
    pytest.param(
        ask(REQUEST, local=UNUSABLE, shared=UNUSABLE, lock=Lock.TAKEN),
        (WAIT, None, None),
        id="token-that-became-unusable-during-the-round-trips-is-not-served",
    ),
    pytest.param(
        ask(REQUEST, shared=LAZY, waited=True),
        (USE, NOT_DUE, "LAZY"),
        id="request-after-waiting-takes-any-usable-token",
    ),
    pytest.param(ask(REQUEST, waited=True, lock=Lock.TAKEN), (WAIT, None, None), id="request-after-waiting-waits-on"),
    pytest.param(ask(REQUEST, waited=True), (RENEW, None, None), id="request-after-waiting-renews-a-free-lock"),
    # --- beat ----------------------------------------------------------------------------------------
    pytest.param(ask(BEAT, shared=FRESH), (USE, NOT_DUE, "FRESH"), id="beat-not-due-before-the-window"),
    pytest.param(ask(BEAT, shared=WINDOW), (RENEW, None, "WINDOW"), id="beat-renews-from-the-window-start"),
    pytest.param(ask(BEAT, shared=WINDOW, lock=Lock.TAKEN), (USE, BUSY, "WINDOW"), id="beat-busy-keeps-the-token"),
    pytest.param(ask(BEAT, lock=Lock.TAKEN), (STAND_BY, BUSY, None), id="beat-never-waits"),
    pytest.param(ask(BEAT, local=FRESH), (OFFER_BACK, None, "FRESH"), id="beat-offers-its-token-back"),
    pytest.param(ask(BEAT, local=WINDOW), (RENEW, None, None), id="beat-renews-an-empty-cache-inside-its-own-window"),
    pytest.param(ask(BEAT), (RENEW, None, None), id="beat-renews-an-empty-cache"),
    pytest.param(
        ask(BEAT, shared=WINDOW, backoff=BACKOFF), (USE, IN_BACKOFF, "WINDOW"), id="beat-backoff-keeps-the-token"
    ),
    pytest.param(ask(BEAT, backoff=BACKOFF), (FAIL, IN_BACKOFF, None, Failure.FLEET_BACKOFF), id="beat-backoff"),
    pytest.param(ask(BEAT, shared=Tombstone(FRESH.fingerprint)), (RENEW, None, None), id="beat-renews-a-refused-token"),
    pytest.param(ask(BEAT, shared=UNUSABLE), (RENEW, None, None), id="beat-no-fallback-within-the-safety-margin"),
    # --- a manual renewal ---------------------------------------------------------------------------
    pytest.param(ask(MANUAL, shared=FRESH), (RENEW, None, None), id="manual-renews-whatever-the-age"),
    pytest.param(ask(MANUAL, backoff=BACKOFF), (RENEW, None, None), id="manual-ignores-the-backoff"),
    pytest.param(ask(MANUAL, shared=FRESH, lock=Lock.TAKEN), (WAIT, None, None), id="manual-waits-for-the-renewer"),
    pytest.param(
        ask(MANUAL, shared=FRESH, waited=True), (USE, NOT_DUE, "FRESH"), id="manual-takes-the-renewal-it-waited-for"
    ),
    # --- holding the renewal lock: the entry read since the lock was taken -----------------------------
    pytest.param(
        ask(REQUEST, shared=FRESH, lock=Lock.OURS), (USE, NOT_DUE, "FRESH"), id="locked-another-renewed-meanwhile"
    ),
    pytest.param(ask(REQUEST, shared=WINDOW, lock=Lock.OURS), (USE, NOT_DUE, "WINDOW"), id="locked-request-first-half"),
    pytest.param(ask(REQUEST, shared=LAZY, lock=Lock.OURS), (RENEW, None, "LAZY"), id="locked-request-renews"),
    pytest.param(
        ask(REQUEST, shared=LAZY, lock=Lock.OURS, backoff=BACKOFF),
        (RENEW, None, "LAZY"),
        id="locked-backoff-was-checked-before-the-lock",
    ),
    pytest.param(
        ask(REQUEST, local=FRESH, shared=Tombstone(FRESH.fingerprint), lock=Lock.OURS),
        (RENEW, None, None),
        id="locked-request-no-fallback-to-a-refused-token",
    ),
    pytest.param(
        ask(REQUEST, shared=LAZY, lock=Lock.OURS, waited=True),
        (RENEW, None, None),
        id="locked-after-waiting-no-fallback",
    ),
    pytest.param(ask(BEAT, shared=FRESH, lock=Lock.OURS), (USE, NOT_DUE, "FRESH"), id="locked-beat-not-due"),
    pytest.param(ask(BEAT, shared=WINDOW, lock=Lock.OURS), (RENEW, None, "WINDOW"), id="locked-beat-renews"),
    pytest.param(ask(MANUAL, shared=FRESH, lock=Lock.OURS), (RENEW, None, None), id="locked-manual-renews"),
    # --- the cache is down ---------------------------------------------------------------------------
    pytest.param(
        ask(BEAT, local=FRESH, shared=CACHE_DOWN),
        (STAND_BY, RefreshOutcome.CACHE_UNAVAILABLE, None),
        id="cache-down-beat-reports-it",
    ),
    pytest.param(ask(MANUAL, local=FRESH, shared=CACHE_DOWN), (RENEW, None, None), id="cache-down-manual-renews"),
    pytest.param(
        ask(REQUEST, local=FRESH, shared=CACHE_DOWN), (USE, NOT_DUE, "FRESH"), id="cache-down-keeps-its-own-token"
    ),
    pytest.param(
        ask(REQUEST, local=WINDOW, shared=CACHE_DOWN), (USE, NOT_DUE, "WINDOW"), id="cache-down-first-half-keeps"
    ),
    pytest.param(
        ask(REQUEST, local=LAZY, shared=CACHE_DOWN), (RENEW, None, "LAZY"), id="cache-down-renews-its-own-lazily"
    ),
    pytest.param(
        ask(REQUEST, local=LAZY, shared=CACHE_DOWN, backoff=BACKOFF),
        (USE, IN_BACKOFF, "LAZY"),
        id="cache-down-backoff-keeps-its-own-token",
    ),
    pytest.param(
        ask(REQUEST, shared=CACHE_DOWN, backoff=BACKOFF),
        (FAIL, IN_BACKOFF, None, Failure.LOCAL_BACKOFF),
        id="cache-down-backoff-without-a-token",
    ),
    pytest.param(
        ask(REQUEST, local=UNUSABLE, shared=CACHE_DOWN), (RENEW, None, None), id="cache-down-never-within-safety"
    ),
]


@pytest.mark.parametrize(("situation", "expected"), RULES)
def test_each_rule(situation: Situation, expected: tuple[object, ...]) -> None:
    assert summary(decide(situation, POLICY)) == expected


def test_a_token_is_looked_at_again_before_it_enters_its_window():
    decision = decide(ask(REQUEST, shared=FRESH), POLICY)
    assert decision.look_again_at == NOW + POLICY.local_recheck
    timing = TokenTiming.of(FRESH, POLICY)
    almost = decide(replace(ask(REQUEST, shared=FRESH), now=timing.renew_at - 1), POLICY)
    assert almost.look_again_at == timing.renew_at  # never later than the window's start


@pytest.mark.parametrize(
    ("t", "quiet_until", "expected"),
    [
        pytest.param(FRESH, 0.0, NOW + 10.0, id="before-the-window-every-local-recheck"),
        pytest.param(WINDOW, 0.0, NOW + WINDOW_RECHECK, id="first-half-more-often"),
        pytest.param(token("near-lazy", 15.2), 0.0, NOW + 0.2, id="first-half-not-past-the-lazy-start"),
        pytest.param(LAZY, 0.0, NOW + WAIT_POLL, id="second-half-shortly"),
        pytest.param(LAZY, NOW + 2, NOW + 2, id="second-half-not-before-the-backoff-ends"),
        pytest.param(LAZY, NOW + 60, LAZY.expires_at - 5.0, id="never-after-the-token-stops-being-usable"),
    ],
)
def test_when_the_memo_is_looked_at_again(t: AccessToken, quiet_until: float, expected: float) -> None:
    assert next_look(NOW, t, POLICY, quiet_until=quiet_until) == pytest.approx(expected)


def test_during_a_backoff_the_fleet_is_not_polled_until_it_ends():
    short = replace(BACKOFF, until=NOW + 2)
    assert decide(ask(REQUEST, shared=LAZY, backoff=short), POLICY).look_again_at == short.until


def test_without_a_token_a_backoff_says_when_it_ends():
    decision = decide(ask(REQUEST, backoff=BACKOFF), POLICY)
    assert decision.backoff == BACKOFF and decision.look_again_at == BACKOFF.until


def test_a_waiting_caller_looks_again_shortly():
    assert decide(ask(REQUEST, lock=Lock.TAKEN), POLICY).look_again_at == NOW + WAIT_POLL


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [
        pytest.param(LAZY, (USE, RefreshOutcome.FAILED, "LAZY"), id="still-usable-is-served"),
        pytest.param(UNUSABLE, (FAIL, RefreshOutcome.FAILED, None), id="used-up-during-the-request-fails"),
        pytest.param(None, (FAIL, RefreshOutcome.FAILED, None), id="nothing-to-serve-fails"),
    ],
)
def test_after_a_failed_renewal(fallback: AccessToken | None, expected: tuple[object, ...]) -> None:
    decision = after_failed_renewal(NOW, fallback, POLICY, quiet_until=NOW + 3)
    assert summary(decision) == expected
    if decision.action is USE:
        assert decision.look_again_at == NOW + 3  # quiet until the next request may be made


def test_a_renewed_token_is_served_and_memoised_until_its_recheck():
    decision = after_renewal(NOW, FRESH, POLICY)
    assert summary(decision) == (USE, RefreshOutcome.RENEWED, "FRESH")
    assert decision.look_again_at == NOW + POLICY.local_recheck


def test_origins_and_outcomes_keep_their_recorded_strings():
    assert [c.value for c in Caller] == ["beat", "request", "manual"]
    assert [o.value for o in RefreshOutcome] == [
        "not-due",
        "renewed",
        "busy",
        "backoff",
        "failed",
        "cache-unavailable",
    ]
