"""Time the follow-up queue and the case file on generated data.

Run:
    .venv/bin/python bench/queue.py                # 5,000,000 cases, 20M attempts
    .venv/bin/python bench/queue.py --cases 50000 --attempts 200000  # quick check

It recreates the database `recova_bench_queue` on the configured server (the embedded
one under $RECOVA_HOME/pgdata when DATABASE_URL is unset, RECOVA_HOME defaulting to
.recova/bench), migrates it and drops it at the end unless --keep is given.

Data, all made with INSERT ... SELECT generate_series in the database:
- one collector per 5,000 cases, and one team per 20 collectors;
- one debtor per case, and cases dealt to the collectors row by row, so the rows of
  one collector lie on different heap pages;
- about 3% of cases without a first contact, 1% with a broken promise, 8% promised,
  2% paused and 5% paid;
- the attempts on random cases over 90 days;
- one contact per 5 debtors, one assignment event per case, one promise per 10
  cases and one payment per 5 cases.
The secondary indexes are dropped for the load and built again after it, then
VACUUM ANALYZE runs.

Measured, each as p95 (and median) over --samples random collectors or cases, warm
(after one pass over the same sample) and cold (the first run after evicting
PostgreSQL's buffers with pg_buffercache_evict_all and, when allowed, the kernel's
page cache):
- baseline: a bare index scan of one collector's top 50 rows (ids only);
- the queue query, the counters query and the whole `my_queue` service call;
- the queue page's server time: the service calls the page makes (collectors,
  `my_queue`, `reminders_for`);
- each case-file query, and the whole `case_file` service call.
Every figure is printed with its ratio to the baseline of the same run.
"""

import sys
from pathlib import Path

# This file's name hides the standard library's `queue` module, which psycopg and
# polars import, so its folder must leave the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402
from db.models import Case  # noqa: E402
from db.models_queue import QUEUE_STATUS_SQL  # noqa: E402
from services import case_file as case_file_service  # noqa: E402
from services import queue as queue_service  # noqa: E402
from services.actors import Actor  # noqa: E402

DATABASE = "recova_bench_queue"
CASES_PER_COLLECTOR = 5_000
COLLECTORS_PER_TEAM = 20
BULK_TABLES = ("cases", "debtors", "contacts", "contact_attempts", "case_events",
               "promises", "payments")  # fmt: skip

BASELINE_SQL = f"""
SELECT id FROM cases
WHERE collector_id = :collector AND {QUEUE_STATUS_SQL}
ORDER BY next_action_at, risk_grade, balance DESC, id
LIMIT 50
"""


def bench_url() -> str:
    base = make_url(db_engine.server_url())
    return base.set(database=DATABASE).render_as_string(hide_password=False)


def drop(url: str) -> None:
    target = make_url(url)
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(db_engine.psycopg_conninfo(maintenance), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def step(label: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


# Generation


def secondary_indexes(session: Session) -> list[tuple[str, str]]:
    """Return (name, definition) of every non-unique index of the bulk tables."""
    rows = session.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.schemaname = 'public' AND i.tablename = ANY(:tables) "
            "AND NOT x.indisunique"
        ),
        {"tables": list(BULK_TABLES)},
    ).all()
    return [(name, definition) for name, definition in rows]


def generate(session: Session, cases: int, attempts: int) -> None:
    collectors = max(cases // CASES_PER_COLLECTOR, 2)
    teams = max(collectors // COLLECTORS_PER_TEAM, 1)
    params = {"cases": cases, "attempts": attempts, "collectors": collectors}
    session.execute(text("SET session_replication_role = replica"))
    session.execute(text("SELECT setseed(0.42)"))
    indexes = secondary_indexes(session)
    for name, _ in indexes:
        session.execute(text(f'DROP INDEX "{name}"'))
    session.commit()

    def run(sql: str) -> Callable[[], object]:
        def action() -> None:
            # psycopg sends a statement with parameters on its own.
            for statement in sql.split(";\n"):
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                session.execute(text(statement), used)
            session.commit()

        return action

    step(
        f"{teams} teams, {collectors} collectors, creditor, batch",
        run(
            f"""
            INSERT INTO teams (name)
            SELECT 'Team ' || n FROM generate_series(1, {teams}) n;
            INSERT INTO users (id, username, display_name, password_hash, role,
                team_id)
            SELECT n, 'collector' || n, 'Collector ' || n, 'not-a-hash', 'collector',
                1 + n % {teams}
            FROM generate_series(1, :collectors) n;
            SELECT setval(pg_get_serial_sequence('users', 'id'), :collectors);
            INSERT INTO creditors (id, name) VALUES (1, 'Bench Bank');
            INSERT INTO batches (id, creditor_id, name, placement_date, file_name,
                file_sha256, file_size, mode)
            VALUES (1, 1, 'bench', current_date - 30, 'bench.csv', repeat('0', 64),
                0, 'valid-rows')
            """
        ),
    )
    step(
        f"{cases:,} debtors",
        run(
            """
            INSERT INTO debtors (id, creditor_id, name, id_number, phones, address,
                province, city)
            SELECT n, 1, 'Debtor ' || n, '110105' || lpad(n::text, 12, '0'),
                ARRAY['138' || lpad(n::text, 8, '0')],
                'Room ' || n % 900 || ', Road ' || n % 97, '广东', '深圳'
            FROM generate_series(1, :cases) n
            """
        ),
    )
    step(
        f"{cases:,} cases",
        run(
            f"""
            INSERT INTO cases (id, creditor_id, batch_id, debtor_id, case_no,
                total_due, balance, overdue_since, dpd_at_placement, placement_date,
                bucket, status, segment, strategy, risk_grade, collector_id, team_id,
                assigned_at, first_contact_due_at, first_contact_at, next_action_at,
                last_attempt_at, attempt_count, promise_due_on, promise_broken_at)
            SELECT n, 1, 1, n, 'BQ' || lpad(n::text, 9, '0'), amount, amount,
                current_date - dpd, dpd, current_date - 30,
                CASE WHEN dpd <= 30 THEN 'M1' WHEN dpd <= 60 THEN 'M2'
                     WHEN dpd <= 90 THEN 'M3' ELSE 'M4' END,
                CASE WHEN r < 0.05 THEN 'paid' WHEN r < 0.07 THEN 'paused'
                     WHEN r < 0.15 THEN 'promised' ELSE 'in_progress' END,
                'standard', 'standard', (ARRAY['A', 'B', 'C', 'D', 'E'])[1 + n % 5],
                collector, 1 + collector % {teams},
                assigned,
                CASE WHEN fresh THEN now() + (random() * 48 - 24) * interval '1 hour'
                     ELSE assigned + interval '24 hours' END,
                CASE WHEN fresh THEN NULL ELSE assigned + interval '2 hours' END,
                CASE WHEN random() < 0.01 THEN NULL
                     ELSE now() + (random() * 20 - 10) * interval '1 day' END,
                CASE WHEN fresh THEN NULL ELSE now() - random() * interval '10 days'
                END,
                CASE WHEN fresh THEN 0 ELSE 1 + n % 9 END,
                CASE WHEN r >= 0.07 AND r < 0.15
                     THEN current_date + (random() * 10 - 3)::int END,
                CASE WHEN random() < 0.01
                     THEN now() - random() * interval '3 days' END
            FROM (
                SELECT n, random() AS r, random() < 0.03 AS fresh,
                    1 + n % :collectors AS collector,
                    round((500 + random() * 60000)::numeric, 2) AS amount,
                    (1 + random() * 120)::int AS dpd,
                    now() - (1 + random() * 60) * interval '1 day' AS assigned
                FROM generate_series(1, :cases) n
            ) AS g
            """
        ),
    )
    step(
        f"{attempts:,} contact attempts",
        run(
            """
            INSERT INTO contact_attempts (case_id, debtor_id, collector_id, team_id,
                at, channel, target, target_address, result_code, connected,
                right_party, note, created_by)
            SELECT c, c, 1 + c % :collectors, NULL,
                now() - random() * interval '90 days', 'phone', 'debtor',
                '138' || lpad(c::text, 8, '0'), code, code IN ('promise', 'refused'),
                code IN ('promise', 'refused'), 'bench attempt', 1 + c % :collectors
            FROM (
                SELECT 1 + (random() * (:cases - 1))::bigint AS c,
                    (ARRAY['no_answer', 'busy', 'promise', 'refused', 'voicemail'])
                    [1 + (random() * 4)::int] AS code
                FROM generate_series(1, :attempts)
            ) AS g
            """
        ),
    )
    step(
        "contacts, events, promises and payments",
        run(
            """
            INSERT INTO contacts (debtor_id, name, relation, phone)
            SELECT n, 'Contact ' || n, 'sibling', '139' || lpad(n::text, 8, '0')
            FROM generate_series(1, :cases, 5) n;
            INSERT INTO case_events (case_id, at, actor_name, kind, to_collector_id,
                rule)
            SELECT n, now() - interval '30 days', 'bench', 'assigned',
                1 + n % :collectors, 'auto'
            FROM generate_series(1, :cases) n;
            INSERT INTO promises (case_id, collector_id, amount, due_on, status)
            SELECT n, 1 + n % :collectors, 500, current_date - n % 20,
                (ARRAY['pending', 'kept', 'broken'])[1 + n % 3]
            FROM generate_series(1, :cases, 10) n;
            INSERT INTO payments (creditor_id, transaction_id, case_id, amount,
                paid_on, source)
            SELECT 1, 'T' || n, n, 100, current_date - n % 60, 'import'
            FROM generate_series(1, :cases, 5) n
            """
        ),
    )
    session.execute(text("SET session_replication_role = origin"))

    def rebuild() -> None:
        session.execute(text("SET maintenance_work_mem = '1GB'"))
        for _name, definition in indexes:
            session.execute(text(definition))
            session.commit()

    step(f"{len(indexes)} secondary indexes built again", rebuild)

    def vacuum() -> None:
        with session.connection().engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE"))

    step("VACUUM ANALYZE", vacuum)


# Measuring


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def evict(session: Session, drop_os_cache: bool) -> None:
    """Empty PostgreSQL's buffers and, when allowed, the kernel's page cache."""
    session.execute(text("SELECT pg_buffercache_evict_all()"))
    session.commit()
    if drop_os_cache:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def collector_actor(session: Session, user_id: int) -> Actor:
    team = session.scalar(
        text("SELECT team_id FROM users WHERE id = :id"), {"id": user_id}
    )
    return Actor(id=user_id, username=f"collector{user_id}", role="collector",
                 team_id=team)  # fmt: skip


def queue_measures(session: Session) -> dict[str, Callable[[int], object]]:
    """Return the timed actions of the queue, each taking a collector id."""
    from services import reminders

    def baseline(collector: int) -> object:
        return session.execute(text(BASELINE_SQL), {"collector": collector}).all()

    def queue_query(collector: int) -> object:
        filters = queue_service.QueueFilter()
        moments = queue_service._moments(None)
        params = {
            "collectors": [collector],
            "now": moments.now,
            "soon": moments.soon,
            "day_start": moments.day_start,
            "today": moments.today,
            "offset": 0,
            "limit": 50,
            "fetch": 50,
        }
        sql = queue_service._queue_sql(filters, params)
        return session.execute(text(sql), params).all()

    def counters(collector: int) -> object:
        return queue_service._counters(
            session, [collector], queue_service._moments(None)
        )

    def my_queue(collector: int) -> object:
        actor = collector_actor(session, collector)
        return queue_service.my_queue(
            session=session, actor=actor, filters=queue_service.QueueFilter()
        )

    def page(collector: int) -> object:
        actor = collector_actor(session, collector)
        queue_service.list_queue_collectors(session=session, actor=actor)
        queue_service.my_queue(
            session=session, actor=actor, filters=queue_service.QueueFilter()
        )
        try:
            reminders.reminders_for(session=session, actor=actor)
        except NotImplementedError:
            pass
        session.rollback()

    def reminders_only(collector: int) -> object:
        actor = collector_actor(session, collector)
        try:
            return reminders.reminders_for(session=session, actor=actor)
        except NotImplementedError:
            return None
        finally:
            session.rollback()

    return {
        "baseline: bare index scan, top 50 ids": baseline,
        "queue query (4 tiers, top 50 rows)": queue_query,
        "counters query (5 counts)": counters,
        "my_queue service call": my_queue,
        "reminders_for (reminders panel)": reminders_only,
        "queue page service calls": page,
    }


def case_measures(session: Session) -> dict[str, Callable[[int], object]]:
    """Return the timed actions of the case file, each taking a case id."""
    from services.attachments import attachment_rows
    from services.payments import case_payment_rows
    from services.segments import current_strategies

    manager = Actor(id=None, username="bench", role="manager")

    def sql(query: str) -> Callable[[int], object]:
        return lambda case_id: session.execute(
            text(query), {"case": case_id, "limit": case_file_service.ATTEMPT_LIMIT}
        ).all()

    def case_row(case_id: int) -> object:
        session.expunge_all()
        return session.get(Case, case_id)

    def contacts(case_id: int) -> object:
        return session.execute(
            text("SELECT * FROM contacts WHERE debtor_id = :case ORDER BY id"),
            {"case": case_id},
        ).all()

    def whole(case_id: int) -> object:
        session.expunge_all()
        return case_file_service.case_file(
            session=session, actor=manager, case_id=case_id
        )

    return {
        "case and debtor row": case_row,
        "contacts": contacts,
        "payments": lambda case_id: case_payment_rows(session=session, case_id=case_id),
        "contact attempts": sql(case_file_service.ATTEMPTS_SQL),
        "promises": sql(case_file_service.PROMISES_SQL),
        "installment plans": sql(case_file_service.PLANS_SQL),
        "assignment history": sql(case_file_service.HISTORY_SQL),
        "attachments": lambda case_id: attachment_rows(session, case_id),
        "strategies in force": lambda case_id: current_strategies(session),
        "case_file service call": whole,
    }


def measure(
    session: Session,
    actions: dict[str, Callable[[int], object]],
    keys: list[int],
    cold_keys: list[int],
    drop_os_cache: bool,
    can_evict: bool,
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for label, action in actions.items():
        cold = []
        if can_evict:
            for key in cold_keys:
                evict(session, drop_os_cache)
                cold.append(timed(lambda key=key, act=action: act(key)))
        for key in keys:
            action(key)
        warm = [timed(lambda key=key, act=action: act(key)) for key in keys]
        results[label] = {
            "p95": percentile(warm, 0.95),
            "median": statistics.median(warm),
            "cold_median": statistics.median(cold) if cold else float("nan"),
            "cold_max": max(cold) if cold else float("nan"),
        }
    return results


def report(title: str, results: dict[str, dict[str, float]], baseline: dict) -> None:
    print(f"\n{title}")
    print(
        f"  {'what':<40} {'p95 ms':>8} {'median':>8} {'÷ base':>7} "
        f"{'cold med':>9} {'cold max':>9} {'÷ base':>7}"
    )
    for label, figures in results.items():
        print(
            f"  {label:<40} {figures['p95']:>8.2f} {figures['median']:>8.2f} "
            f"{figures['p95'] / baseline['p95']:>7.1f} "
            f"{figures['cold_median']:>9.1f} {figures['cold_max']:>9.1f} "
            f"{figures['cold_median'] / baseline['cold_median']:>7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5_000_000)
    parser.add_argument("--attempts", type=int, default=20_000_000)
    parser.add_argument("--samples", type=int, default=200, help="warm samples")
    parser.add_argument("--cold", type=int, default=10, help="cold samples")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a kept database again"
    )
    args = parser.parse_args()

    url = bench_url()
    if not args.reuse:
        drop(url)
        migrate.upgrade(url)
    engine = create_engine(url)
    print(f"database {DATABASE}: {args.cases:,} cases, {args.attempts:,} attempts")
    try:
        with Session(engine) as session:
            if not args.reuse:
                generate(session, args.cases, args.attempts)
            run_measures(session, args)
    finally:
        engine.dispose()
        if not args.keep:
            drop(url)


def run_measures(session: Session, args: argparse.Namespace) -> None:
    can_evict = True
    try:
        session.execute(text("CREATE EXTENSION IF NOT EXISTS pg_buffercache"))
        session.commit()
    except Exception as error:  # noqa: BLE001 - a server without the extension
        session.rollback()
        print(f"no cold runs: pg_buffercache is not available ({error})")
        can_evict = False
    drop_os_cache = os.access("/proc/sys/vm/drop_caches", os.W_OK)
    print(f"kernel page cache dropped for cold runs: {drop_os_cache}")

    picker = random.Random(7)
    collectors = session.scalars(text("SELECT id FROM users WHERE role = 'collector'"))
    collector_ids = list(collectors)
    warm_collectors = [picker.choice(collector_ids) for _ in range(args.samples)]
    cold_collectors = picker.sample(collector_ids, min(args.cold, len(collector_ids)))
    case_count = session.scalar(text("SELECT max(id) FROM cases"))
    warm_cases = [picker.randint(1, case_count) for _ in range(args.samples)]
    cold_cases = [picker.randint(1, case_count) for _ in range(args.cold)]

    queue_results = measure(
        session, queue_measures(session), warm_collectors, cold_collectors,
        drop_os_cache, can_evict,
    )  # fmt: skip
    baseline = queue_results["baseline: bare index scan, top 50 ids"]
    report("Queue (per collector)", queue_results, baseline)
    case_results = measure(
        session, case_measures(session), warm_cases, cold_cases,
        drop_os_cache, can_evict,
    )  # fmt: skip
    report("Case file (per case)", case_results, baseline)
    rows = session.scalar(text("SELECT count(*) FROM cases"))
    print(f"\ncases in the table: {rows:,}")


if __name__ == "__main__":
    main()
