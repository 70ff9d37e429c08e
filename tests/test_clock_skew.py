"""Clock skew: every process does its expiry arithmetic on the token server's clock.

The sandbox runs on the test's :class:`FakeClock` (the true time); each manager runs on a
:class:`SkewedClock`, a machine whose clock is off by up to a minute either way. Its offset is
measured from the token answers' ``Date`` header and the JWT ``iat``, or from a HEAD of the token
URL when it requests no token itself. tests/test_clock_skew_faketime.py does the same with real
processes under ``faketime``.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
from dataclasses import replace
from email.utils import formatdate
from typing import Any

import pytest
import requests

from bettorsense import telemetry, tokens
from bettorsense.conf import get_config
from bettorsense.health import rules
from bettorsense.health.report import health_json
from bettorsense.health.rules import Snapshot, Status, evaluate
from bettorsense.health.snapshot import take_snapshot
from bettorsense.telemetry import ProcessClock
from bettorsense.tokens.clock import OffsetEstimate, ServerClock, estimate_offset, http_date_seconds
from bettorsense.tokens.endpoint import TokenEndpoint
from bettorsense.tokens.manager import TokenManager
from bettorsense.tokens.token import AccessToken
from tests.support.clock import FakeClock, SkewedClock
from tests.support.sandbox import token_requests
from tests.test_health_rules import CONFIG as HEALTH_RULES_CONFIG

pytestmark = pytest.mark.django_db(transaction=True)

LIFETIME = 600  # window min(30 s, 10%) = 30 s; the sandbox's reuse rule allows a request with 60 s left
WINDOW = 30.0


def claims(token: AccessToken) -> dict[str, Any]:
    part = token.value.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# --- the estimate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "received", "date", "iat", "offset", "uncertainty", "source"),
    [
        # in step with the server, to the second: left alone
        (1000.2, 1000.3, 1000.0, None, 0.0, 0.55, "date"),
        (1000.0, 1000.0, 1000.0, 1000.0, 0.0, 0.5, "date+iat"),
        # 45 s ahead: the server said 1000 while we read 1045.2..1045.3
        (1045.2, 1045.3, 1000.0, None, -44.2, 0.55, "date"),
        # 45 s behind
        (955.2, 955.3, 1000.0, None, 45.8, 0.55, "date"),
        # iat narrows the Date's interval: Date allows (-45.3, -44.2), iat (-44.3, -43.2)
        (1045.2, 1045.3, 1000.0, 1001.0, -44.2, 0.05, "date+iat"),
        # they disagree (issuer and front on different clocks): the Date wins
        (1045.2, 1045.3, 1000.0, 1010.0, -44.2, 0.55, "date"),
        # a token server that sends no Date: iat alone
        (1045.2, 1045.3, None, 1000.0, -44.2, 0.55, "iat"),
    ],
)
def test_the_estimate_is_the_latest_server_time_the_stamps_allow(
    sent, received, date, iat, offset, uncertainty, source
):
    estimate = estimate_offset(sent_at=sent, received_at=received, date=date, iat=iat)
    assert estimate is not None
    assert estimate.offset == pytest.approx(offset)
    assert estimate.uncertainty == pytest.approx(uncertainty)
    assert estimate.source == source


def test_a_corrected_clock_never_runs_behind_the_server():
    """Over random skews, send times and round trips: a nonzero estimate never puts the server earlier."""
    rng = random.Random(11)
    for _ in range(5000):
        true_offset = rng.choice([-1, 1]) * rng.uniform(1.5, 60)
        sent = 1_751_328_000 + rng.uniform(0, 1000)
        trip = rng.uniform(0, 0.2)
        stamp = math.floor(sent + rng.uniform(0, trip) + true_offset)  # the server's floored clock
        estimate = estimate_offset(sent_at=sent, received_at=sent + trip, date=stamp, iat=None)
        assert estimate is not None and estimate.offset != 0.0
        assert true_offset <= estimate.offset <= true_offset + 2 * estimate.uncertainty + 1e-9


@pytest.mark.parametrize(
    ("sent", "received", "date", "iat"),
    [(1000.0, 1001.0, None, None), (1001.0, 1000.0, 1000.0, None), (1000.0, 1000.0, float("nan"), None)],
)
def test_no_stamp_or_a_reversed_clock_gives_no_estimate(sent, received, date, iat):
    assert estimate_offset(sent_at=sent, received_at=received, date=date, iat=iat) is None


@pytest.mark.parametrize(
    "header", [None, "", "soon", "Tue, 99 Foo 2026 00:00:00 GMT", "x" * 200, "Fri, 31 Dec 99999 23:59:59 GMT"]
)
def test_a_date_header_that_is_no_date_is_ignored(header):
    assert http_date_seconds(header) is None


def test_a_date_header_is_read():
    assert http_date_seconds(formatdate(1_751_328_000, usegmt=True)) == 1_751_328_000


def test_the_server_clock_keeps_the_latest_plausible_estimate():
    fake = FakeClock()
    clock = ServerClock(fake, max_offset=300)
    assert clock.now() == fake.now()  # no estimate: the local clock, as before
    assert clock.observe(OffsetEstimate(-45.0, 0.5, fake.now(), "date"))
    assert clock.now() == fake.now() - 45
    assert not clock.observe(OffsetEstimate(-4000.0, 0.5, fake.now(), "date"))  # absurd: refused, reported
    assert clock.rejected is not None and clock.rejected.offset == -4000.0
    assert clock.now() == fake.now() - 45
    assert not clock.observe(OffsetEstimate(10.0, 6.0, fake.now(), "date"))  # a slow answer says too little
    assert not clock.observe(OffsetEstimate(float("inf"), 0.5, fake.now(), "date"))
    assert clock.observe(OffsetEstimate(44.0, 0.5, fake.now(), "date"))  # the clock was set back since
    assert clock.now() == fake.now() + 44 and clock.rejected is None


# --- the sandbox sends its own time ---------------------------------------------------------------


def test_the_sandbox_dates_its_answers_and_tokens_on_its_own_clock(configure, sandbox, clock):
    clock.advance(0.7)
    head = requests.head(sandbox.token_url, timeout=5)
    assert head.headers["Date"] == formatdate(int(clock.now()), usegmt=True)
    token = TokenEndpoint(get_config(), clock).request_token()
    assert claims(token)["iat"] == int(clock.now())


# --- one process, skewed --------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [60.0, 45.0, -45.0, -60.0])
def test_a_token_answer_measures_the_offset_and_the_token_is_on_the_servers_clock(configure, sandbox, clock, skew):
    sandbox.state.set_config(token_lifetime=LIFETIME)
    manager = TokenManager(get_config(), clock=SkewedClock(clock, skew))
    token = manager.get_token()
    assert manager.clock.offset == pytest.approx(-skew, abs=1.0)
    assert token.expires_at == claims(token)["exp"]  # the server's instant, not the skewed clock's
    assert token.issued_at == pytest.approx(clock.now(), abs=1.0)


@pytest.mark.parametrize("skew", [45.0, -45.0])
def test_a_process_that_requests_no_token_measures_its_offset_with_a_head(configure, sandbox, clock, skew):
    sandbox.state.set_config(token_lifetime=LIFETIME)
    config = get_config()
    TokenManager(config, clock=clock).get_token()  # the fleet's token, from a process in step
    asked = token_requests(sandbox)
    skewed = TokenManager(config, clock=SkewedClock(clock, skew))
    skewed.get_token()
    assert skewed.clock.offset == pytest.approx(-skew, abs=1.0)
    assert token_requests(sandbox) == asked  # the probe is no token request


def test_the_probe_is_not_repeated_before_clock_probe_every(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME)
    configure(CLOCK_PROBE_EVERY=600)
    config = get_config()
    TokenManager(config, clock=clock).get_token()
    skewed = TokenManager(config, clock=SkewedClock(clock, 45))
    skewed.get_token()
    first = skewed.clock.estimate
    clock.advance(300)
    skewed.get_token()
    assert skewed.clock.estimate is first
    clock.advance(301)
    skewed.get_token()
    assert skewed.clock.estimate is not first and skewed.clock.estimate is not None


# --- the fleet over five lifetimes ----------------------------------------------------------------


def run_fleet(
    sandbox: Any, clock: FakeClock, *, beat_skew: float | None, request_skews: list[float], seeded: bool = False
) -> dict[str, Any]:
    """Five lifetimes, second by second: beat every 10 s (if any), each request path every second.

    ``seeded``: a process whose clock is right requested the first token. Every token a request
    path is handed is checked against the sandbox as the API would check it.
    """
    config = get_config()
    if seeded:
        TokenManager(config, clock=clock).get_token()
    beat = TokenManager(config, clock=SkewedClock(clock, beat_skew)) if beat_skew is not None else None
    paths = [TokenManager(config, clock=SkewedClock(clock, skew)) for skew in request_skews]
    refused = 0
    for second in range(5 * LIFETIME + 1):
        if beat is not None and second % 10 == 0:
            beat.refresh_if_due()
        for path in paths:
            token = path.get_token()
            record, _ = sandbox.state.authenticate(token.value, config.audience)
            refused += record is None
        clock.advance(1.0)
    issued = sorted(sandbox.state.tokens.values(), key=lambda record: record.issued_at)
    early = [
        round(before.expires_at - after.issued_at, 1)
        for before, after in itertools.pairwise(issued)
        if before.expires_at - after.issued_at > WINDOW
    ]
    return {
        "refused": refused,
        "reuse_violations": sandbox.state.stats()["reuse_violations"],
        "issued": len(issued),
        "renewed_early": early,  # seconds left on the previous token, where more than the window
        "managers": [beat, *paths] if beat is not None else paths,
    }


@pytest.mark.parametrize("beat_skew", [60.0, 45.0, -45.0, -60.0])
def test_a_fleet_with_clocks_a_minute_off_renews_in_the_window_and_sends_no_expired_token(
    configure, sandbox, clock, beat_skew
):
    sandbox.state.set_config(token_lifetime=LIFETIME, enforce_reuse=True)
    fleet = run_fleet(sandbox, clock, beat_skew=beat_skew, request_skews=[60.0, -60.0, 0.0])
    assert fleet["reuse_violations"] == 0
    assert fleet["refused"] == 0
    assert fleet["renewed_early"] == []
    assert 5 <= fleet["issued"] <= 6


def test_without_beat_the_request_paths_renew_in_the_window(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME, enforce_reuse=True)
    fleet = run_fleet(sandbox, clock, beat_skew=None, request_skews=[45.0, -45.0])
    assert (fleet["reuse_violations"], fleet["refused"], fleet["renewed_early"]) == (0, 0, [])
    assert 5 <= fleet["issued"] <= 6


@pytest.mark.parametrize("skew", [60.0, -60.0])
def test_a_lone_skewed_process_uses_the_fleets_token_on_the_servers_clock(configure, sandbox, clock, skew):
    sandbox.state.set_config(token_lifetime=LIFETIME, enforce_reuse=True)
    fleet = run_fleet(sandbox, clock, beat_skew=None, request_skews=[skew], seeded=True)
    assert (fleet["reuse_violations"], fleet["refused"], fleet["renewed_early"]) == (0, 0, [])


# The controls: with every measurement refused (CLOCK_SKEW_MAX below the skew), the old behaviour.


def test_an_uncorrected_clock_ahead_renews_too_early(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME, enforce_reuse=True)
    configure(CLOCK_SKEW_MAX=1)
    fleet = run_fleet(sandbox, clock, beat_skew=45.0, request_skews=[0.0])
    assert fleet["reuse_violations"] > 0


def test_an_uncorrected_clock_behind_sends_expired_tokens(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME, enforce_reuse=True)
    configure(CLOCK_SKEW_MAX=1)
    fleet = run_fleet(sandbox, clock, beat_skew=None, request_skews=[-45.0], seeded=True)
    assert fleet["refused"] > 0


# --- health ---------------------------------------------------------------------------------------


def test_health_shows_each_process_offset_and_warns_past_the_threshold(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME)
    config = get_config()
    TokenManager(config, clock=SkewedClock(clock, 45)).get_token()
    snapshot = take_snapshot()
    assert len(snapshot.clocks) == 1  # one process (this one) reported
    assert snapshot.clocks[0].skew == pytest.approx(45, abs=1.0)
    verdict = evaluate(snapshot)
    assert "clock-skew" in {r.code for r in verdict.reasons}
    body = health_json(snapshot, verdict, full=True)
    assert body["clocks"][0]["skew"] == pytest.approx(45, abs=1) and body["clocks"][0]["corrected"]


def test_a_refused_measurement_is_shown_as_uncorrected(configure, sandbox, clock):
    sandbox.state.set_config(token_lifetime=LIFETIME)
    configure(CLOCK_SKEW_MAX=300)
    TokenManager(get_config(), clock=SkewedClock(clock, 400)).get_token()
    snapshot = take_snapshot()
    assert [c.refused for c in snapshot.clocks] == [True]
    assert "clock-skew-uncorrected" in {r.code for r in evaluate(snapshot).reasons}


CONFIG = replace(HEALTH_RULES_CONFIG, clock_skew_warn=5.0)


def process(skew: float, *, refused: bool = False, name: str = "web:1") -> ProcessClock:
    return ProcessClock(name, skew, 0.5, "date", 1_751_328_000.0, refused)


@pytest.mark.parametrize(
    ("clocks", "codes"),
    [
        ((), set()),
        ((process(4.9), process(-4.9, name="web:2")), set()),
        ((process(5.1),), {"clock-skew"}),
        ((process(-45),), {"clock-skew"}),
        ((process(400, refused=True),), {"clock-skew-uncorrected"}),
        ((process(400, refused=True), process(-45, name="beat:3")), {"clock-skew-uncorrected", "clock-skew"}),
    ],
)
def test_the_clock_rule(clocks, codes):
    reasons = rules._clocks(Snapshot(taken_at=1_751_328_000.0, config=CONFIG, clocks=clocks))
    assert {r.code for r in reasons} == codes
    assert all(r.status is Status.DEGRADED for r in reasons)


def test_two_processes_reporting_into_one_slot_both_show(configure, monkeypatch):
    """Two processes whose ids hash to the same slot: the second takes the next one, atomically."""
    config = get_config()
    first = telemetry._clock_slot_keys(config, "host:1")[0]
    ids = (f"host:{pid}" for pid in range(2, 10_000))
    other = next(name for name in ids if telemetry._clock_slot_keys(config, name)[0] == first)
    for name, offset in (("host:1", -45.0), (other, 45.0), ("host:1", -44.0)):
        monkeypatch.setattr(telemetry, "_process_id", lambda name=name: name)
        telemetry.record_clock_offset(config, OffsetEstimate(offset, 0.5, 0.0, "date"), rejected=None)
    shown = {c.process: c.skew for c in telemetry.read_process_clocks(config, since=0.0)}
    assert shown == {"host:1": 44.0, other: -45.0}


@pytest.mark.parametrize("skew", [45.0, -45.0])
def test_health_judges_the_token_on_the_servers_clock(configure, sandbox, clock, skew):
    """The process serving health runs on a skewed clock: the token is still usable, not expiring."""
    sandbox.state.set_config(token_lifetime=LIFETIME)
    manager = tokens.get_token_manager(get_config())  # the one health reads
    manager.clock.local = SkewedClock(clock, skew)
    manager.get_token()
    clock.advance(LIFETIME - WINDOW - 10)  # 40 s left: a clock 45 s ahead, uncorrected, says expired
    snapshot = take_snapshot()
    assert snapshot.token_usable
    assert snapshot.taken_at == pytest.approx(clock.now(), abs=1.0)
    assert {r.code for r in evaluate(snapshot).reasons} == {"clock-skew", "beat-stale"}
