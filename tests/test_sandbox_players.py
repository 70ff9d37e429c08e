"""Players added to the sandbox at run time: in the batch, under changedSince from the day they join."""

from __future__ import annotations

from datetime import date

import pytest

from bettorsense.sandbox import SandboxClient, SandboxControlError, profiles
from tests.support.sandbox import all_pages, fetch_token, fresh_state, get, profile_url

START = date(2025, 7, 1)


def test_added_players_join_the_batch_and_the_changed_since_filter(server):
    state = fresh_state(server, players=300, page_size=100, start_day=START)
    token = fetch_token(server)
    before = {item["playerId"] for item in all_pages(server, token)}
    day = state.advance_day()

    added = SandboxClient(server.url).add_players(100)

    assert added[0] == "player_301" and added[-1] == "player_400" and len(added) == 100
    with_profile = {a for a in added if int(a.removeprefix("player_")) % 97 and int(a.removeprefix("player_")) % 89}
    assert len(with_profile) == 98  # player_388 (4 * 97) and player_356 (4 * 89) have none
    everyone = {item["playerId"] for item in all_pages(server, token)}
    assert everyone == before | with_profile
    changed = {item["playerId"]: item for item in all_pages(server, token, {"changedSince": day.isoformat()})}
    assert with_profile <= set(changed)
    assert {changed[a]["lastUpdatedDateTime"] for a in with_profile} == {f"{day.isoformat()}{profiles.SCORE_TIME}"}
    assert get(profile_url(server, "player_301"), token).json() == changed["player_301"]
    assert get(profile_url(server, "player_388"), token).status_code == 404
    assert get(profile_url(server, "player_401"), token).status_code == 404


def test_added_players_are_not_rescored_and_leave_the_old_ones_alone(server):
    state = fresh_state(server, players=300, start_day=START)
    token = fetch_token(server)
    state.advance_day()
    state.add_players(5)
    first = get(profile_url(server, "player_302"), token).json()
    state.advance_day(3)
    assert get(profile_url(server, "player_302"), token).json() == first
    with_added = [item for item in all_pages(server, token) if int(item["playerId"].removeprefix("player_")) <= 300]

    fresh_state(server, players=300, start_day=START).advance_day(4)
    assert all_pages(server, fetch_token(server)) == with_added  # the same re-scores, day by day


@pytest.mark.parametrize("count", [0, -1, "3", True, 100_001])
def test_a_bad_count_is_400(server, count):
    fresh_state(server, players=10)
    with pytest.raises(SandboxControlError, match="count"):
        SandboxClient(server.url)._object("POST", "players", {"count": count})
