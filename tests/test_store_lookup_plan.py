"""A page's look-up of stored profiles is an index probe per account, whatever the statistics say.

With the unique constraint's columns in the order (bookmaker, sub-bookmaker, account), PostgreSQL
planned the look-up for a pair its statistics did not know yet, which is every new brand's first
load, as a scan of all the pair's rows with the accounts as a filter: each page read every row
written before it, and a 1,000,000-player first load slowed from 27 to 225 ms a page for the
look-up alone. The account id now leads the constraint, so the accounts are always the index
condition. Here the statistics know one pair and the look-up is for another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from bettorsense import sync_postgres
from bettorsense.models import PlayerRiskProfile as StoredProfile
from tests.support.postgres import require_postgresql

KNOWN, NEW = (1, 1), (7, 8)
ROWS = 20000
LOOKED_UP = 100

pytestmark = pytest.mark.django_db


@pytest.fixture
def store_with_stale_statistics() -> list[str]:
    require_postgresql()
    now = datetime.now(UTC)

    def rows(pair: tuple[int, int]) -> list[StoredProfile]:
        return [
            StoredProfile(
                bookmaker_id=pair[0],
                sub_bookmaker_id=pair[1],
                account_id=f"player_{n}",
                risk_score=float(n % 100 + 1),
                band=n % 5,
                fetched_at=now,
                changed_at=now,
            )
            for n in range(1, ROWS + 1)
        ]

    StoredProfile.objects.bulk_create(rows(KNOWN), batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(StoredProfile._meta.db_table)}")
    StoredProfile.objects.bulk_create(rows(NEW), batch_size=1000)  # written since the statistics
    return [f"player_{n}" for n in range(ROWS - LOOKED_UP + 1, ROWS + 1)]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _assert_probes_by_account(plan: dict[str, Any]) -> None:
    table = StoredProfile._meta.db_table
    on_table = [node for node in _nodes(plan) if node.get("Relation Name") == table or "Index Name" in node]
    assert on_table, plan
    assert not [node for node in on_table if node["Node Type"] == "Seq Scan"], plan
    conditions = " ".join(str(node.get("Index Cond", "")) for node in on_table)
    filters = " ".join(str(node.get("Filter", "")) for node in on_table)
    assert "account_id" in conditions, plan
    assert "account_id" not in filters, plan


def test_the_postgresql_path_probes_the_index_by_account(store_with_stale_statistics: list[str]) -> None:
    if not sync_postgres.applies(connection):
        pytest.fail("the PostgreSQL write path needs psycopg 3")
    cursor = sync_postgres._cursor(connection)
    query = "EXPLAIN (FORMAT JSON) " + sync_postgres.stored_state_query(connection)
    cursor.execute(query, [store_with_stale_statistics, *NEW])
    (document,) = cursor.fetchone() or (None,)
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    _assert_probes_by_account(plan)


def test_the_portable_path_probes_the_index_by_account(store_with_stale_statistics: list[str]) -> None:
    lookup = StoredProfile.objects.filter(
        bookmaker_id=NEW[0], sub_bookmaker_id=NEW[1], account_id__in=store_with_stale_statistics
    ).values_list("account_id", "risk_score", "band", "changed_at")
    plan = json.loads(lookup.explain(format="json"))[0]["Plan"]
    _assert_probes_by_account(plan)
    assert len(lookup) == LOOKED_UP
