"""The job worker: procrastinate on Recova's own database.

Procrastinate keeps its tables, types and functions in a schema of their own,
`procrastinate`, so they stay apart from the application's tables and migrations.
The worker applies that schema on start when it is missing, under an advisory lock,
so two workers starting at once apply it once.

Periodic tasks: the daily jobs at 06:00 in the configured time zone, and promise
evaluation every hour. Procrastinate defers each periodic run once per scheduled
time, whatever the number of workers, and every job is idempotent per day, so a
retry or a second run changes nothing.

`DAILY_JOBS` lists the daily jobs in order; each takes a session and the day.
Other features append theirs (KPI snapshot, nightly scoring).
"""

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import procrastinate
import psycopg
from sqlalchemy.orm import Session

from recova.settings import get_settings

logger = logging.getLogger(__name__)

SCHEMA = "procrastinate"
SEARCH_PATH = f"-c search_path={SCHEMA},public"
SCHEMA_LOCK = 7_310_004  # advisory lock key while the schema is applied
DAILY_HOUR = 6
QUEUE = "recova"


def _evaluate_promises(session: Session, day: date) -> Any:
    from services.promises import evaluate_promises

    return evaluate_promises(session=session, as_of=day)


def _resume_paused(session: Session, day: date) -> Any:
    from services.case_actions import resume_due_cases

    return resume_due_cases(session=session, today=day)


def _send_digests(session: Session, day: date) -> Any:
    from services.reminders import send_daily_digest

    return send_daily_digest(session=session, day=day)


def _snapshot(session: Session, day: date) -> Any:
    from services.snapshots import catch_up_snapshots

    # Also takes any day the worker missed; a day already taken is skipped.
    return catch_up_snapshots(session, day)


def _score(session: Session, day: date) -> Any:
    from services.scoring import nightly_job

    return nightly_job(session, day)


# Promises and pauses settle first, so the snapshot and the scores see the day's
# states, and the digest goes out last with the fresh grades.
DAILY_JOBS: list[Callable[[Session, date], Any]] = [
    _evaluate_promises,
    _resume_paused,
    _snapshot,
    _score,
    _send_digests,
]


def local_day(moment: datetime | None = None) -> date:
    zone = ZoneInfo(get_settings().timezone)
    return (moment or datetime.now(UTC)).astimezone(zone).date()


def run_daily(day: date, session: Session | None = None) -> dict[str, Any]:
    """Run every daily job for `day`, in order; return each job's result by name."""
    from db.engine import session_factory

    results: dict[str, Any] = {}
    own = session is None
    session = session or session_factory()()
    try:
        for job in DAILY_JOBS:
            name = job.__name__.lstrip("_")
            results[name] = job(session, day)
            session.commit()
            logger.info("daily job %s for %s: %s", name, day, results[name])
    finally:
        if own:
            session.close()
    return results


# procrastinate.


def conninfo() -> str:
    from db.engine import psycopg_conninfo, server_url

    return psycopg_conninfo(server_url())


def ensure_schema(info: str | None = None) -> bool:
    """Apply procrastinate's schema unless it is there; return True when applied."""
    with psycopg.connect(info or conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            found = conn.execute(
                "SELECT to_regclass(%s)", (f"{SCHEMA}.procrastinate_jobs",)
            ).fetchone()
            if found and found[0] is not None:
                return False
            with conn.transaction():
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(f"SET LOCAL search_path = {SCHEMA}, public")
                schema_sql = procrastinate.schema.SchemaManager.get_schema()
                conn.execute(schema_sql)
            logger.info("procrastinate schema applied")
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def _daily_cron() -> str:
    """Return 06:00 in the configured zone as a UTC cron line.

    NOTE: procrastinate reads cron lines in UTC, so the offset is taken when the
    worker starts. In a zone with daylight saving the run moves by an hour until
    the worker restarts.
    """
    zone = ZoneInfo(get_settings().timezone)
    offset = datetime.now(zone).utcoffset()
    hours = int(offset.total_seconds() // 3600) if offset else 0
    minutes = int(offset.total_seconds() % 3600 // 60) if offset else 0
    total = (DAILY_HOUR * 60 - hours * 60 - minutes) % (24 * 60)
    return f"{total % 60} {total // 60} * * *"


def make_app(info: str | None = None) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=info or conninfo(), kwargs={"options": SEARCH_PATH}
    )
    return procrastinate.App(connector=connector)


class _LazyApp:
    """Build the App on first use, so importing this module opens no database."""

    def __init__(self) -> None:
        self._app: procrastinate.App | None = None

    def get(self) -> procrastinate.App:
        if self._app is None:
            self._app = _register(make_app())
        return self._app


def _register(target: procrastinate.App) -> procrastinate.App:
    @target.periodic(cron=_daily_cron(), periodic_id="daily")
    @target.task(name="recova.daily", queue=QUEUE, queueing_lock="recova.daily")
    def daily(timestamp: int) -> dict[str, Any]:
        day = local_day(datetime.fromtimestamp(timestamp, UTC))
        return run_daily(day)

    @target.periodic(cron="5 * * * *", periodic_id="hourly")
    @target.task(name="recova.promises", queue=QUEUE, queueing_lock="recova.promises")
    def promises(timestamp: int) -> dict[str, int]:
        from db.engine import session_factory
        from services.promises import evaluate_promises

        day = local_day(datetime.fromtimestamp(timestamp, UTC))
        with session_factory()() as session:
            return evaluate_promises(session=session, as_of=day)

    @target.task(name="recova.run_daily", queue=QUEUE)
    def run_daily_task(day: str) -> dict[str, Any]:
        return run_daily(date.fromisoformat(day))

    return target


_lazy = _LazyApp()


def get_app() -> procrastinate.App:
    return _lazy.get()


def run_worker(concurrency: int = 1, wait: bool = True, **options: Any) -> None:
    """Apply the schema if needed and work jobs until stopped (or, without `wait`,
    until the queue is empty)."""
    ensure_schema()
    get_app().run_worker(queues=[QUEUE], concurrency=concurrency, wait=wait, **options)
