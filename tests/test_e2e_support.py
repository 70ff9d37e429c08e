"""Fast checks of the end-to-end suite's own logic (the suite itself runs with ``make e2e``)."""

from __future__ import annotations

import base64
from pathlib import Path

from e2e.bounds import longest_wait, max_token_requests
from e2e.fuzz import Case, cases
from e2e.leaks import corpus, scan, secret_needles, token_needles
from e2e.results import ScenarioResult, failure_summary

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJhYmMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_backoff_bound_follows_the_doubling_delays():
    # 0.8 * (1 + 2 + 4 + 8 + 16) = 24.8 <= 30 < 0.8 * 63 = 50.4: at most 6 requests in 30 s.
    assert max_token_requests(30, base=1, maximum=60) == 6
    assert max_token_requests(0.5, base=1, maximum=60) == 1
    # Capped at BACKOFF_MAX: 1, 2, 4 then 4, 4, ...
    assert max_token_requests(0.8 * (1 + 2 + 4 + 4 + 4), base=1, maximum=4) == 6
    assert longest_wait(3, base=1, maximum=60) == 1.2 * 4


def test_fuzz_model_decodes_as_gunicorn_and_django_do():
    def account(target: bytes) -> str | None:
        return Case("GET", target, "").expected_account()

    assert account(b"/players/a%2F..%2Fb/risk-profile/?fresh=1") == "a/../b"
    assert account(b"/players/a/../b/risk-profile/?fresh=1") == "a/../b"  # nobody normalises dot segments
    assert account(b"/players/%ff/risk-profile/?fresh=1") == "%FF"  # Django re-percent-encodes bad UTF-8
    assert account(b"/players/caf%C3%A9/risk-profile/") == "caf\u00e9"
    assert account(b"/players/a%00b/risk-profile/") is None  # control character: refused at the edge
    assert account(b"/players/" + b"x" * 65 + b"/risk-profile/") is None  # too long
    assert account(b"/players/a?b/risk-profile/") is None  # the query starts at the first "?"
    assert Case("POST", b"/players/a/risk-profile/", "").expected_account() is None
    generated = cases()
    assert len(generated) > 200
    assert not any(
        (c.expected_account() or "").startswith("player_") and c.expected_account()[7:].isdigit() for c in generated
    )


def test_leak_scan_finds_planted_canaries_and_nothing_else(tmp_path: Path):
    secret = "cs-0123456789abcdef"
    (tmp_path / "clean.log").write_text("Token renewed by beat: sha256:0123456789ab, expires in 20 s\n")
    (tmp_path / "canary.log").write_text(f"Sandbox client {JWT} registered\n")
    (tmp_path / "basic.txt").write_text("Authorization: Basic " + base64.b64encode(f"id:{secret}".encode()).decode())
    (tmp_path / "split.txt").write_text("signature only: " + JWT.split(".")[2])
    needles = token_needles("canary", JWT, canary=True) + secret_needles("secret", secret, client_id="id")
    hits, scanned = scan(corpus([tmp_path]), needles, {JWT})
    assert scanned > 0
    assert {(h.path.name, h.label, h.canary) for h in hits} == {
        ("canary.log", "canary", True),
        ("canary.log", "JWT-shaped string", True),
        ("basic.txt", "secret (HTTP Basic)", False),
        ("split.txt", "canary signature", True),
    }
    assert all(secret not in h.excerpt and JWT not in h.excerpt for h in hits)


def test_jwt_pattern_finds_a_token_nobody_harvested(tmp_path: Path):
    (tmp_path / "web.log").write_text(f"oops: Bearer {JWT}\n")
    hits, _ = scan(corpus([tmp_path]), [], set())
    assert {h.label for h in hits} == {"JWT-shaped string", "Bearer credential"}
    assert not any(h.canary for h in hits)


def _raise_from_a_scenario() -> None:
    raise RuntimeError("redis-server on port 12142 exited: bind failed")


def test_failure_summary_names_each_failed_run_its_failed_figures_and_where_it_aborted():
    passed = ScenarioResult(1, "Steady state", "services", "make e2e SCENARIO=1")
    passed.check("failed calls", "0 of 10", "0", True)
    checked = ScenarioResult(3, "Token endpoint down", "services", "make e2e SCENARIO=3")
    checked.check("calls after recovery", "0 of 5", "0", True)
    checked.check("token requests during the outage", "6", "≤ 5", False)
    aborted = ScenarioResult(4, "Redis stopped", "services", "make e2e SCENARIO=4")
    aborted.seconds = 71.2
    try:
        _raise_from_a_scenario()
    except RuntimeError as err:
        aborted.fail(err)
    # The frame is this test's file, not the suite's: no place is named.
    assert aborted.raised_at is None

    lines = failure_summary([passed, checked, aborted]).splitlines()

    assert lines == [
        "e2e: FAILED scenario 3 (services) after 0 s: make e2e SCENARIO=3",
        "e2e:   token requests during the outage: 6 (expected ≤ 5)",
        "e2e: FAILED scenario 4 (services) after 71 s: make e2e SCENARIO=4",
        "e2e:   aborted: RuntimeError: redis-server on port 12142 exited: bind failed",
    ]
    assert failure_summary([passed]) == ""


def test_an_abort_inside_the_suite_names_the_suites_innermost_frame():
    from e2e.cluster import wait_until

    result = ScenarioResult(4, "Redis stopped", "services", "make e2e SCENARIO=4")
    try:
        wait_until("a beat renewal", lambda: False, 0.01)
    except TimeoutError as err:
        result.fail(err)

    assert result.raised_at is not None and result.raised_at.startswith("e2e/cluster.py:")
    assert result.raised_at.endswith(" in wait_until") and " -> " not in result.raised_at
    assert "a beat renewal" in failure_summary([result])
