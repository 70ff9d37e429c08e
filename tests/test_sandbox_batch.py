"""The batch endpoint: paging, the changedSince filter, envelopes, and the daily re-score."""

from __future__ import annotations

import json
import tracemalloc
from datetime import date

import pytest

from bettorsense.sandbox import SandboxServer, SandboxState, profiles
from tests.support.sandbox import all_pages, batch_url, fetch_token, fresh_state, get, profile_url

START = date(2025, 7, 1)


def setup(server: SandboxServer, **kwargs) -> tuple[SandboxState, str]:
    state = fresh_state(server, start_day=START, **kwargs)
    return state, fetch_token(server)


def test_pages_through_five_thousand_players(server):
    state, token = setup(server)

    first = get(batch_url(server), token).json()
    items = all_pages(server, token)

    expected = profiles.active_count(5000)
    assert expected == 5000 - 51 - 56 + 0  # every 97th and every 89th are left out
    assert {k: v for k, v in first.items() if k != "items"} == {
        "page": 1,
        "pageSize": 1000,
        "totalPages": 5,
        "totalCount": expected,
    }
    assert len(items) == expected
    indexes = [int(item["playerId"].removeprefix("player_")) for item in items]
    assert indexes == sorted(set(indexes))
    assert not [i for i in indexes if i % 97 == 0 or i % 89 == 0]
    assert items[0] == get(profile_url(server, "player_1"), token).json()
    assert state.stats()["api_requests"]["by_route"]["batch"] == {"200": 6}


def test_page_past_the_end_is_empty(server):
    _, token = setup(server, players=250, page_size=100)

    body = get(batch_url(server), token, params={"page": "9"}).json()

    assert body["items"] == []
    assert (body["page"], body["totalPages"], body["totalCount"]) == (9, 3, profiles.active_count(250))


def test_pages_are_stable(server):
    _, token = setup(server, players=300, page_size=50)

    assert get(batch_url(server), token, params={"page": "4"}).content == (
        get(batch_url(server), token, params={"page": "4"}).content
    )


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", "2147483648", "1" * 5000])
def test_invalid_page_is_400(server, page):
    state, token = setup(server, players=100)

    response = get(batch_url(server), token, params={"page": page})

    assert response.status_code == 400
    assert "page" in response.json()["errors"]
    assert state.requests[-1].query == {"page": page}


def test_query_keys_ignore_case(server):
    _, token = setup(server, players=300, page_size=100)

    assert get(batch_url(server), token, params={"Page": "2"}).json()["page"] == 2


class TestChangedSince:
    def test_filters_on_last_updated_over_several_pages(self, server):
        _, token = setup(server, players=3000, page_size=60)
        cutoff = "2025-06-25T00:14:00Z"

        everything = all_pages(server, token)
        changed = all_pages(server, token, {"changedSince": cutoff})

        expected = [item for item in everything if item["lastUpdatedDateTime"] >= cutoff]
        assert len(changed) > 5 * 60
        assert changed == expected
        assert len(changed) < len(everything)

    @pytest.mark.parametrize(
        ("value", "first_day"),
        [
            ("2025-06-25", "2025-06-25"),
            ("2025-06-25T00:14:00Z", "2025-06-25"),
            ("2025-06-25T00:14:01Z", "2025-06-26"),
            ("2025-06-25T02:14:00+02:00", "2025-06-25"),
            ("2025-06-25T00:14:00", "2025-06-25"),
            ("2025-06-25T00:14:00.000Z", "2025-06-25"),
        ],
    )
    def test_accepts_dates_and_date_times(self, server, value, first_day):
        _, token = setup(server, players=400, page_size=1000)

        items = get(batch_url(server), token, params={"changedSince": value}).json()["items"]

        assert items
        assert min(item["lastUpdatedDateTime"] for item in items) == f"{first_day}T00:14:00Z"

    @pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "2025-06-25T25:00:00Z"])
    def test_bad_value_is_400(self, server, value):
        _, token = setup(server, players=100)

        response = get(batch_url(server), token, params={"changedSince": value})

        assert response.status_code == 400
        assert "changedSince" in response.json()["errors"]

    def test_an_unencoded_plus_becomes_a_space_and_is_refused(self, server):
        _, token = setup(server, players=100)

        response = get(f"{batch_url(server)}?changedSince=2025-06-25T00:14:00+00:00", token)

        assert response.status_code == 400

    def test_the_parameter_name_is_configurable(self, server):
        state, token = setup(server, players=300, batch_date_param="lastUpdatedDate")

        total = get(batch_url(server), token).json()["totalCount"]
        ignored = get(batch_url(server), token, params={"changedSince": "2025-07-01"}).json()
        used = get(batch_url(server), token, params={"lastUpdatedDate": "2025-07-01"}).json()

        assert ignored["totalCount"] == total
        assert 0 < used["totalCount"] < total
        assert state.requests[-1].query == {"lastUpdatedDate": "2025-07-01"}


@pytest.mark.parametrize(
    ("envelope", "shape"),
    [("bare", list), ("results", dict)],
)
def test_other_envelopes(server, envelope, shape):
    _, token = setup(server, players=150, page_size=100, batch_envelope=envelope)

    body = get(batch_url(server), token).json()
    last = get(batch_url(server), token, params={"page": "3"}).json()

    assert isinstance(body, shape)
    items = body if envelope == "bare" else body["results"]
    assert len(items) == 100
    if envelope == "results":
        assert set(body) == {"results"}
        assert last == {"results": []}
    else:
        assert last == []


class TestAdvanceDay:
    def test_rescores_about_a_tenth_of_the_players(self, server):
        state, token = setup(server, players=2000, page_size=1000)
        before = {item["playerId"]: item for item in all_pages(server, token)}

        assert state.advance_day() == date(2025, 7, 2)
        after = {item["playerId"]: item for item in all_pages(server, token)}

        changed = [pid for pid in after if after[pid] != before[pid]]
        assert 150 <= len(changed) <= 220
        for pid in changed:
            assert after[pid]["lastUpdatedDateTime"] == "2025-07-02T00:14:00Z"
            assert after[pid]["riskScore"] != before[pid]["riskScore"]
        assert any(after[pid]["riskCategory"] != before[pid]["riskCategory"] for pid in changed)
        assert all(before[pid]["lastUpdatedDateTime"] <= "2025-07-01T00:14:00Z" for pid in before)

        since = all_pages(server, token, {"changedSince": "2025-07-02"})
        assert sorted(item["playerId"] for item in since) == sorted(changed)

    def test_single_profiles_follow(self, server):
        state, token = setup(server, players=500)
        book_before = {i: get(profile_url(server, f"player_{i}"), token).json() for i in range(1, 60)}

        state.advance_day(2)
        changed = {i for i in range(1, 60) if get(profile_url(server, f"player_{i}"), token).json() != book_before[i]}

        book = state._book(123, 456)
        expected = {i for i in range(1, 60) if book.version_of(i)}
        assert changed == expected
        assert state.stats()["config"]["day"] == "2025-07-03"

    def test_start_day_derives_from_the_clock(self, server):
        state = fresh_state(server, clock=lambda: 1_751_400_000.0)  # 2025-07-01T20:00Z

        assert state.current_day == date(2025, 7, 1)


def test_one_hundred_thousand_players_stay_cheap(server):
    state, token = setup(server, players=100_000)
    tracemalloc.start()
    try:
        last = get(batch_url(server), token, params={"page": "98"}).json()
        filtered = get(batch_url(server), token, params={"changedSince": "2025-07-01", "page": "2"}).json()
        single = get(profile_url(server, "player_99999"), token).json()
        state.advance_day()
        after = get(batch_url(server), token, params={"changedSince": "2025-07-02", "page": "3"}).json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert last["totalCount"] == profiles.active_count(100_000)
    assert last["totalPages"] == 98 and 0 < len(last["items"]) < 1000
    assert len(filtered["items"]) == 1000
    assert single["playerId"] == "player_99999"
    assert after["totalCount"] == sum(
        1 for i, v in state._book(123, 456).versions.items() if v == 1 and i % 97 and i % 89
    )
    assert len(state._book(123, 456).versions) == 10_000
    assert peak < 40 * 1024 * 1024


def test_page_arithmetic_matches_a_plain_count():
    active = [i for i in range(1, 20_001) if profiles.index_status(i) is profiles.Status.ACTIVE]

    assert profiles.active_count(20_000) == len(active)
    assert [profiles.nth_active(n) for n in range(1, len(active) + 1)] == active


def test_generated_json_equals_the_profile():
    for index in (1, 2, 500, 4999):
        for version in (0, 3):
            raw = profiles.profile_json(5, 1, 2, index, version, START)
            assert json.loads(raw) == profiles.build_profile(5, 1, 2, index, version, START)
