"""The daily case snapshot and the KPI aggregates refreshed with it.

Storage: `case_snapshots` is a history table, not a copy of every case per day.
A case gets a new row only when its bucket, balance, status, collector, team,
segment or risk grade differs from its current row. The old row is then closed by
setting `valid_to` to the day. The state of any case on day D is the row with
`valid_from <= D < valid_to` (or `valid_to` null). Buckets move every 30 days past
due, so a portfolio whose balances rarely change writes about one row per open
case a month. That is an estimated 170,000 rows a day for 5 million cases instead
of 5 million (bench/kpi.py measured 10.2 million rows after 12 snapshot days of 5
million cases). A month-boundary copy plus daily sums was the other choice, but
roll rates over any month and trends over any period would then need two kinds of
table.

A snapshot records the state of the cases when it is taken, labelled with its day.
Re-running the latest day replaces it. An older day cannot be taken again, because
today's state does not describe it. Days missed while nothing ran are caught up
in order with today's balances and statuses, and with each day's own bucket.

The same daily job rewrites the KPI aggregates. `kpi_daily` gets the event sums of
the last `REFRESH_DAYS` days and of any older day that received a payment or an
attempt since the last refresh. `kpi_population` gets the cases placed by the
snapshot's day. `kpi_roll` gets each calendar month whose first and last day have
snapshots. services/kpi.py reads them when a query fits their grain.
"""

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from recova.errors import Conflict
from recova.settings import get_settings
from services import kpi_queries
from services.segments import BUCKET_SQL

logger = logging.getLogger(__name__)

# Promises are judged two days after they fall due and first contacts within a day,
# so a month of past days is rewritten each night to pick up such late changes.
REFRESH_DAYS = 35
# Key of the transaction-level advisory lock that serialises snapshot runs.
SNAPSHOT_LOCK = 6_000_001
CLOSED = "('paid', 'settled', 'written_off', 'recalled')"

_TRACKED = ("status", "bucket", "balance", "collector_id", "team_id", "segment")
_COLUMNS = _TRACKED + ("risk_grade",)


def take_snapshot(*, session: Session, day: date) -> int:
    """Record each case's state for `day`, commit, and return the rows written.

    Raises Conflict when a later day already has a snapshot.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SNAPSHOT_LOCK})
    last = session.scalar(text("SELECT max(day) FROM snapshot_days"))
    if last is not None and day < last:
        raise Conflict("snapshot_day_past", day=day.isoformat(), last=last.isoformat())
    if last == day:
        _undo_day(session, day)

    changed = _write_changes(session, day)
    cases = session.scalar(
        text("SELECT count(*) FROM cases WHERE placement_date <= :day"), {"day": day}
    )
    session.execute(
        text(
            "INSERT INTO snapshot_days (day, cases, changed) VALUES (:day, :cases, "
            ":changed) ON CONFLICT (day) DO UPDATE SET cases = excluded.cases, "
            "changed = excluded.changed, taken_at = now()"
        ),
        {"day": day, "cases": cases, "changed": changed},
    )
    session.commit()
    logger.info("snapshot of %s: %s cases, %s rows written", day, cases, changed)
    return changed


def _undo_day(session: Session, day: date) -> None:
    session.execute(
        text("DELETE FROM case_snapshots WHERE valid_from = :day"), {"day": day}
    )
    session.execute(
        text("UPDATE case_snapshots SET valid_to = NULL WHERE valid_to = :day"),
        {"day": day},
    )


def _write_changes(session: Session, day: date) -> int:
    bucket = BUCKET_SQL.format(dpd="(CAST(:day AS date) - c.overdue_since)")
    current = ", ".join(f"h.{name}" for name in _COLUMNS)
    now = ", ".join(f"x.{name}" for name in _COLUMNS)
    session.execute(text("DROP TABLE IF EXISTS snapshot_changes"))
    session.execute(
        text(
            f"""
            CREATE TEMP TABLE snapshot_changes ON COMMIT DROP AS
            SELECT x.* FROM (
                SELECT c.id AS case_id, c.status,
                    CASE WHEN c.status IN {CLOSED} THEN NULL ELSE {bucket} END
                        AS bucket,
                    c.balance, c.collector_id, c.team_id, c.segment, c.risk_grade
                FROM cases c WHERE c.placement_date <= :day
            ) x
            LEFT JOIN case_snapshots h ON h.case_id = x.case_id
                AND h.valid_to IS NULL
            WHERE h.id IS NULL OR ({current}) IS DISTINCT FROM ({now})
            """
        ),
        {"day": day},
    )
    session.execute(
        text(
            "UPDATE case_snapshots h SET valid_to = :day FROM snapshot_changes x "
            "WHERE h.case_id = x.case_id AND h.valid_to IS NULL"
        ),
        {"day": day},
    )
    columns = ", ".join(_COLUMNS)
    inserted = session.execute(
        text(
            f"INSERT INTO case_snapshots (case_id, valid_from, {columns}) "
            f"SELECT case_id, :day, {columns} FROM snapshot_changes"
        ),
        {"day": day},
    )
    return inserted.rowcount


def catch_up_snapshots(session: Session, today: date) -> list[date]:
    """Take the snapshot and refresh the KPIs of every day from the last one to today.

    With no snapshot yet only today is taken. Returns the days taken.
    """
    last = session.scalar(text("SELECT max(day) FROM snapshot_days"))
    if last is not None and last > today:
        return []
    first = today if last is None else last + timedelta(days=1)
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    for day in days:
        daily_job(session, day)
    return days


def daily_job(session: Session, day: date) -> None:
    """Take `day`'s snapshot and refresh the KPI aggregates. A second run changes
    nothing."""
    take_snapshot(session=session, day=day)
    refresh_kpis(session=session, day=day)


def refresh_kpis(*, session: Session, day: date) -> tuple[date, date]:
    """Rewrite the KPI aggregates up to `day`, commit, and return the days rewritten."""
    first = _first_stale_day(session, day)
    params = {"d0": first, "d1": day, "tz": get_settings().timezone}
    session.execute(text("DELETE FROM kpi_daily WHERE day BETWEEN :d0 AND :d1"), params)
    session.execute(text(kpi_queries.rollup_sql()), params)

    session.execute(text("DELETE FROM kpi_population WHERE day = :day"), {"day": day})
    session.execute(
        text(kpi_queries.population_rollup_sql()),
        {"day": day, "tz": params["tz"]},
    )
    for month_start, month_end in _months_to_roll(session, day):
        refresh_roll(session=session, start=month_start, end=month_end)

    session.execute(
        text("INSERT INTO kpi_refreshes (first_day, last_day) VALUES (:d0, :d1)"),
        params,
    )
    session.commit()
    logger.info("KPI aggregates rewritten for %s to %s", first, day)
    return first, day


def refresh_roll(*, session: Session, start: date, end: date) -> None:
    """Rewrite the stored roll of the month `start` to `end`, without a commit."""
    params = {"start": start, "end": end, "tz": get_settings().timezone}
    session.execute(text("DELETE FROM kpi_roll WHERE month = :start"), params)
    session.execute(text(kpi_queries.roll_rollup_sql()), params)


def _first_stale_day(session: Session, day: date) -> date:
    """Return the oldest day whose sums may have changed since the last refresh."""
    first = day - timedelta(days=REFRESH_DAYS)
    since = session.scalar(text("SELECT max(refreshed_at) FROM kpi_refreshes"))
    if since is None:
        oldest = session.scalar(
            text(
                "SELECT least((SELECT min(paid_on) FROM payments), "
                "(SELECT min(at)::date FROM contact_attempts), "
                "(SELECT min(placement_date) FROM cases))"
            )
        )
        return min(first, oldest) if oldest else first
    late = session.scalar(
        text(
            "SELECT least("
            "(SELECT min(paid_on) FROM payments WHERE posted_at > :since), "
            "(SELECT min(at)::date FROM contact_attempts WHERE created_at > :since))"
        ),
        {"since": since},
    )
    return min(first, late) if late else first


def _months_to_roll(session: Session, day: date) -> list[tuple[date, date]]:
    """Return complete months, ending before or on `day`, with snapshots at both ends
    and no stored roll."""
    first_snapshot = session.scalar(text("SELECT min(day) FROM snapshot_days"))
    if first_snapshot is None:
        return []
    months = []
    start = first_snapshot.replace(day=1)
    if start < first_snapshot:
        start = _next_month(start)
    while True:
        end = _next_month(start) - timedelta(days=1)
        if end > day:
            break
        months.append((start, end))
        start = _next_month(start)
    if not months:
        return []
    stored = set(
        session.scalars(
            text("SELECT DISTINCT month FROM kpi_roll WHERE month >= :first"),
            {"first": months[0][0]},
        )
    )
    return [(start, end) for start, end in months if start not in stored or end == day]


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def snapshot_status(*, session: Session) -> dict[str, date | datetime | None]:
    """Return the last snapshot day and the time of the last KPI refresh."""
    row = session.execute(
        text(
            "SELECT (SELECT max(day) FROM snapshot_days), "
            "(SELECT max(refreshed_at) FROM kpi_refreshes)"
        )
    ).one()
    return {"last_snapshot": row[0], "last_refresh": row[1]}
