"""Hostile API answers: nothing the API sends holds a call past its deadline, exhausts memory, or leaks the token.

Every test goes over real HTTP to the sandbox, which plays the hostile far side through faults.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from typing import Any

import pytest

from bettorsense import tokens
from bettorsense.client.api import RETRY_AFTER_MAX
from bettorsense.client.breaker import BreakerState, get_breaker
from bettorsense.client.http import parse_retry_after
from bettorsense.conf import get_config
from bettorsense.exceptions import (
    AccessDenied,
    BadResponse,
    BettorSenseError,
    RateLimited,
    ServiceUnavailable,
)
from bettorsense.sandbox import Fault
from bettorsense.sandbox.api import gzip_bomb
from bettorsense.services import SeenPages, get_player_risk_profile, iter_risk_profile_pages
from tests.support.error_reports import frame_variables

pytestmark = pytest.mark.django_db(transaction=True)

JAN_1_2030 = 1_893_456_000.0  # 2030-01-01T00:00:00Z


def api_requests(sandbox: Any, route: str | None = None) -> list[Any]:
    return [r for r in list(sandbox.state.requests) if route is None or r.route == route]


# --- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Tue, 01 Jan 2030 00:00:30 GMT", 30.0),
        ("Tue, 01 Jan 2030 00:00:30 -0000", 30.0),  # "-0000": UTC, local time unknown
        ("Mon, 31 Dec 2029 23:59:00 GMT", 0.0),  # already past
        (None, None),
        ("", None),
        ("soon", None),
        ("Infinity", None),
        ("-inf", None),
        ("nan", None),
        ("1e999", None),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None),
    ],
)
def test_parse_retry_after_believes_only_finite_values(header, expected):
    assert parse_retry_after(header, now=JAN_1_2030) == expected


def test_parse_retry_after_is_capped_and_counts_from_the_given_now():
    assert parse_retry_after("1000000000000", maximum=60) == 60
    far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=JAN_1_2030)
    assert far is not None and math.isfinite(far) and far > 250_000_000_000
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=JAN_1_2030, maximum=3600) == 3600
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now=JAN_1_2030 + 45) == 15


@pytest.mark.parametrize("header", ["1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT", "Infinity"])
def test_an_absurd_retry_after_fails_typed_at_once(configure, sandbox, header):
    configure(RETRY_BUDGET=2, RETRY_BACKOFF=0.01, MAX_RETRIES=1)
    sandbox.state.add_fault(Fault(target="profile", kind="retry_after", value=header))
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        get_player_risk_profile("player_3")
    assert time.monotonic() - started < 2 * (2 + 2.0)  # generous: the call must not sleep for ages
    retry_after = caught.value.retry_after
    if header == "Infinity":  # not believed: the ordinary backoff is retried, then given up
        assert retry_after is None
        assert len(api_requests(sandbox)) == 2
    else:
        assert retry_after == RETRY_AFTER_MAX
        assert len(api_requests(sandbox)) == 1


# --- sizes and time --------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_with_little_memory(configure, sandbox):
    limit = 1024 * 1024
    configure(API_MAX_BYTES=limit)
    sandbox.state.add_fault(Fault(target="profile", kind="gzip_bomb", value=306_000))
    gzip_bomb(306_000)  # the sandbox's own copy of the bomb is built outside the measurement
    tracemalloc.start()
    try:
        with pytest.raises(BadResponse, match="API_MAX_BYTES") as caught:
            get_player_risk_profile("player_3", fresh=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit, f"reading the bomb peaked at {peak} bytes"
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert len(api_requests(sandbox)) == 1  # refused, not retried


def test_the_limit_applies_to_a_plain_body_too(configure, sandbox):
    sandbox.state.set_config(page_size=1000)
    configure(API_MAX_BYTES=100_000)
    with pytest.raises(BadResponse, match=r"API_MAX_BYTES \(100000\)"):
        next(iter_risk_profile_pages())  # a page of 1,000 profiles is about 490 kB...
    configure(API_MAX_BYTES=1024 * 1024)
    page, profiles = next(iter_risk_profile_pages())  # ...within 1 MiB
    assert page == 1 and len(profiles) == 1000


def test_a_dripped_body_cannot_hold_the_call_past_its_deadline(configure, sandbox):
    configure(READ_TIMEOUT=0.5, RETRY_BUDGET=0.5, RETRY_BACKOFF=0.01, BREAKER_THRESHOLD=1)
    sandbox.state.add_fault(Fault(target="profile", kind="drip", delay=0.05))  # ~600 bytes: 30 s
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="deadline") as caught:
        get_player_risk_profile("player_3", fresh=True)
    assert time.monotonic() - started < 2 * (0.5 + 0.5)  # generous guard; the claim is the typed error
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    # A timed-out call is the failure it is: the breaker counted it (threshold 1) and opened.
    assert get_breaker(get_config()).state() is BreakerState.OPEN


def test_a_json_bomb_is_a_bad_response(configure, sandbox):
    sandbox.state.add_fault(Fault(target="profile", kind="json_bomb", value=100_000))  # RecursionError in json
    with pytest.raises(BadResponse, match="not JSON") as caught:
        get_player_risk_profile("player_3", fresh=True)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert get_breaker(get_config()).state() is BreakerState.CLOSED  # the API answered: no outage


def test_nan_is_not_json(configure, sandbox):
    sandbox.state.add_fault(Fault(target="profile", kind="bad_type", field="percentile", value=float("nan")))
    with pytest.raises(BadResponse, match="not JSON"):
        get_player_risk_profile("player_3", fresh=True)


# --- batch walks -----------------------------------------------------------------------------------


@pytest.fixture
def small_pages(configure, sandbox):
    sandbox.state.set_config(page_size=2)
    configure(BATCH_PAGE_SIZE=2, BATCH_MAX_PAGES=5)


def walk() -> list[int]:
    """The page numbers a walk yields before it ends, or until its BadResponse (re-raised)."""
    pages: list[int] = []
    try:
        for page, _ in iter_risk_profile_pages():
            pages.append(page)
    except BadResponse as err:
        err.add_note(f"pages yielded: {pages}")
        raise
    return pages


def test_endless_pages_stop_at_batch_max_pages(small_pages, sandbox):
    sandbox.state.add_fault(Fault(target="batch", kind="endless_pages"))
    with pytest.raises(BadResponse, match=r"BATCH_MAX_PAGES \(5\)") as caught:
        walk()
    assert caught.value.__notes__ == ["pages yielded: [1, 2, 3, 4, 5]"]
    assert [int(r.query["page"]) for r in api_requests(sandbox, "batch")] == [1, 2, 3, 4, 5]


def test_batch_max_pages_bounds_pages_from_the_start_page(configure, sandbox):
    sandbox.state.set_config(page_size=1000)
    configure(BATCH_MAX_PAGES=5)
    assert walk() == [1, 2, 3, 4, 5]  # five pages (4,883 active players): exactly the bound
    configure(BATCH_MAX_PAGES=4)
    with pytest.raises(BadResponse, match="BATCH_MAX_PAGES"):
        walk()
    configure(BATCH_MAX_PAGES=2)
    assert [page for page, _ in iter_risk_profile_pages(start_page=4)] == [4, 5]


def test_alternating_pages_are_refused_when_an_earlier_page_comes_back(small_pages, sandbox):
    sandbox.state.add_fault(Fault(target="batch", kind="alternating_pages"))
    with pytest.raises(BadResponse, match="Batch page 3 repeats") as caught:
        walk()
    assert caught.value.__notes__ == ["pages yielded: [1, 2]"]


def test_a_page_longer_than_the_page_size_is_refused(small_pages, sandbox):
    sandbox.state.add_fault(Fault(target="batch", kind="oversized_page", page=1))
    with pytest.raises(BadResponse, match=r"holds 200000 profiles, more than BATCH_PAGE_SIZE \(2\)") as caught:
        walk()
    assert caught.value.__notes__ == ["pages yielded: []"]


def test_seen_pages_know_a_page_by_its_players_in_any_order():
    seen = SeenPages()
    pages = [[f"player_{n}" for n in range(start, start + 1000)] for start in range(0, 20_000, 1000)]
    assert all(seen.add(page) for page in pages)
    assert not seen.add(reversed(pages[3]))  # the same players, in another order
    assert not seen.add([*pages[0], "player_0"])  # and once more, doubled
    assert seen.add(pages[5][:-1])  # one player fewer is another page
    assert len(seen) == 21  # a digest per page, whatever the pages hold


# --- echoes of the token ---------------------------------------------------------------------------


def current_token_value() -> str:
    token = tokens.get_token_manager(get_config()).peek()
    assert token is not None
    return token.value


@pytest.mark.parametrize(("status", "error"), [(403, AccessDenied), (503, ServiceUnavailable)])
def test_an_echoed_bearer_token_is_redacted(configure, sandbox, status, error):
    configure(MAX_RETRIES=0)
    sandbox.state.add_fault(Fault(target="profile", kind="echo_token", status=status))
    with pytest.raises(BettorSenseError) as caught:
        get_player_risk_profile("player_3", fresh=True)
    shown = [str(caught.value), repr(caught.value), *caught.value.args, *frame_variables(caught.value)]
    assert type(caught.value) is error
    assert caught.value.detail is not None and "[redacted sha256:" in caught.value.detail
    value = current_token_value()
    assert not [text for text in [*shown, caught.value.detail] if value in text]


def test_no_frame_of_a_failed_call_holds_the_token(configure, sandbox):
    configure(READ_TIMEOUT=0.3, RETRY_BUDGET=0.3)
    sandbox.state.add_fault(Fault(target="profile", kind="drip", delay=0.05))
    with pytest.raises(ServiceUnavailable) as caught:
        get_player_risk_profile("player_3", fresh=True)
    collected = list(frame_variables(caught.value))
    value = current_token_value()
    assert any(text.startswith("token=") for text in collected)  # the collector does see the frames...
    assert not [text for text in collected if value in text]  # ...and no token value in them
