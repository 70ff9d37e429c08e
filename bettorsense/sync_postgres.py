"""The sync's PostgreSQL write path: one page's upsert and change rows in one statement over arrays.

The portable path (:func:`bettorsense.sync._write_page_portable`) costs four statements a page: the
ORM's bulk upsert, a SELECT of the profiles' ids, the change rows' bulk insert, and a SELECT of the
rows it inserted. Here one statement does all four: each column of the page is one array parameter,
``unnest`` turns the arrays back into rows, the upsert's ``RETURNING`` gives the ids to the change
rows' ``INSERT … ON CONFLICT DO NOTHING`` in the same statement, whose own ``RETURNING`` names the
rows it inserted. The factor scores go as JSON text serialised once with :func:`json.dumps` and cast
to ``jsonb`` by the server.

The parameters are sent in PostgreSQL's binary format (``%b``, server-side binding, on a psycopg
cursor of Django's connection, so in the page's transaction): Django's cursors bind on the client,
and psycopg's text rendering of an array escapes every quote of every JSON document in Python, which
cost more than the statement itself (README "Sync into the store" has what each option measured).
That cursor is not Django's, so ``connection.execute_wrappers`` and the debug query log do
not see these two statements.

What to write (which rows are new or changed, their ``changed_at``, which change rows are due a
signal) is decided by the caller for both paths, so the two write the same rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db.backends.base.base import BaseDatabaseWrapper

from bettorsense.models import PlayerRiskProfile, RiskProfileChange, SyncRun
from bettorsense.profiles import RiskProfile

if TYPE_CHECKING:
    import psycopg


class PageRow(NamedTuple):
    """One profile of the page as it is stored."""

    profile: RiskProfile
    scores: list[dict[str, Any]]
    changed_at: datetime


class HistoryRow(NamedTuple):
    """One change row to record for a player of the page."""

    account_id: str
    previous_score: float | None
    previous_band: int | None
    signal_pending: bool


def applies(connection: BaseDatabaseWrapper) -> bool:
    """PostgreSQL through psycopg 3 (Django's psycopg2 backend has no binary parameters)."""
    if connection.vendor != "postgresql":
        return False
    try:  # imported here: psycopg is the host's choice, not a dependency of the app
        import psycopg
    except ImportError:
        return False
    return isinstance(connection.connection, psycopg.Connection)


def stored_state(
    connection: BaseDatabaseWrapper, run: SyncRun, accounts: list[str]
) -> dict[str, tuple[float, int, datetime]]:
    """``{account: (risk_score, band, changed_at)}`` of the page's players already in the store."""
    with _cursor(connection) as cursor:
        cursor.execute(stored_state_query(connection), [accounts, run.bookmaker_id, run.sub_bookmaker_id])
        return {account: (score, band, changed_at) for account, score, band, changed_at in cursor.fetchall()}


def stored_state_query(connection: BaseDatabaseWrapper) -> str:
    """The look-up of :func:`stored_state`; its parameters are the accounts, then the bookmaker ids."""
    table = connection.ops.quote_name(PlayerRiskProfile._meta.db_table)
    return (
        f"SELECT account_id, risk_score, band, changed_at FROM {table} "  # noqa: S608  (our table's name)
        "WHERE account_id = ANY(%b::text[]) AND bookmaker_id = %b AND sub_bookmaker_id = %b"
    )


def _cursor(connection: BaseDatabaseWrapper) -> psycopg.Cursor[Any]:
    """A server-side-binding cursor on Django's connection, in its current transaction."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _statement(quote: Any) -> str:
    profiles = quote(PlayerRiskProfile._meta.db_table)
    changes = quote(RiskProfileChange._meta.db_table)
    return f"""
WITH page AS (
    -- The JSON text is parsed into jsonb once, for both tables.
    SELECT account_id, risk_score, risk_category, band, percentile, scores::jsonb AS category_scores, last_updated,
        changed_at
    FROM unnest(
        %b::text[], %b::float8[], %b::int2[], %b::int2[], %b::float8[], %b::text[], %b::timestamptz[],
        %b::timestamptz[]
    ) AS raw(account_id, risk_score, risk_category, band, percentile, scores, last_updated, changed_at)
), stored AS (
    INSERT INTO {profiles} (
        client, bookmaker_id, sub_bookmaker_id, account_id, risk_score, risk_category, band, percentile,
        category_scores, last_updated, fetched_at, changed_at
    )
    SELECT %b, %b, %b, account_id, risk_score, risk_category, band, percentile, category_scores,
        last_updated, %b, changed_at
    FROM page
    ON CONFLICT (bookmaker_id, sub_bookmaker_id, account_id) DO UPDATE SET
        client = EXCLUDED.client, risk_score = EXCLUDED.risk_score, risk_category = EXCLUDED.risk_category,
        band = EXCLUDED.band, percentile = EXCLUDED.percentile, category_scores = EXCLUDED.category_scores,
        last_updated = EXCLUDED.last_updated, fetched_at = EXCLUDED.fetched_at, changed_at = EXCLUDED.changed_at
    RETURNING id, account_id
), history AS (
    SELECT * FROM unnest(%b::text[], %b::float8[], %b::int2[], %b::bool[]) WITH ORDINALITY
        AS history(account_id, previous_score, previous_band, signal_pending, position)
)
INSERT INTO {changes} (
    profile_id, risk_score, band, risk_category, percentile, category_scores, previous_score, previous_band,
    last_updated, recorded_at, sync_run_id, signal_pending
)
SELECT stored.id, page.risk_score, page.band, page.risk_category, page.percentile, page.category_scores,
    history.previous_score, history.previous_band, page.last_updated, %b, %b, history.signal_pending
FROM history JOIN page USING (account_id) JOIN stored USING (account_id)
ORDER BY history.position
ON CONFLICT DO NOTHING
RETURNING id, signal_pending
"""  # noqa: S608  (our tables' names, quoted; every value is a parameter)


def write_page(
    connection: BaseDatabaseWrapper, run: SyncRun, now: datetime, rows: list[PageRow], history: list[HistoryRow]
) -> list[int]:
    """Upsert the page and insert its change rows (a version another run recorded is skipped, as on the
    portable path); returns the ids of the inserted rows due a signal, in order."""
    if not rows:
        return []
    profiles = [row.profile for row in rows]
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    params: list[Any] = [
        [p.account_id for p in profiles],
        [p.risk_score for p in profiles],
        [p.risk_category for p in profiles],
        [int(p.band) for p in profiles],
        [p.percentile for p in profiles],
        [dumps(row.scores) for row in rows],
        [p.last_updated for p in profiles],
        [row.changed_at for row in rows],
        run.client,
        run.bookmaker_id,
        run.sub_bookmaker_id,
        now,
        [h.account_id for h in history],
        [h.previous_score for h in history],
        [h.previous_band for h in history],
        [h.signal_pending for h in history],
        now,
        run.pk,
    ]
    with _cursor(connection) as cursor:
        cursor.execute(_statement(connection.ops.quote_name), params)
        inserted = cursor.fetchall()
    return sorted(pk for pk, pending in inserted if pending)
