"""Time the KPI page's service calls for one quarter over millions of rows.

Run: python bench/kpi.py [--cases N] [--attempts N] [--payments N] [--promises N]
[--runs R] [--keep]. Defaults: 5,000,000 cases, 20,000,000 contact attempts,
2,000,000 payments and 1,000,000 promises, made with INSERT ... SELECT
generate_series in the database `recova_bench_kpi` on the configured server
(without DATABASE_URL, the embedded one under $RECOVA_HOME/pgdata, with
RECOVA_HOME defaulting to .recova/bench). Events spread over 2025-10-01 to
2026-09-30; 5 creditors, 60 batches, 10 teams, 200 collectors, 31 provinces.

Set-up, not timed: snapshots and the daily job on the first and last day of each
month from April to September 2026, as the worker would have done on those days.

Timed, in the same run:

- baseline: one bare scan, `SELECT sum(...)` over cases, contact_attempts and
  payments, best of R;
- page: the calls the KPI page makes for the quarter July to September 2026
  (figures with the previous quarter, breakdowns by collector, province and batch,
  the daily series and the vintage curves), in a fresh Python process that
  reports its peak RSS, best of R.

Targets: the page's calls under 1 second in total, and the process under 1 GB.
The database is dropped at the end unless --keep is given. This is a measurement
script, not a test.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's `queue`, which psycopg imports.
sys.path = [
    entry for entry in sys.path if Path(entry or ".").resolve() != ROOT / "bench"
]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402

DATABASE = "recova_bench_kpi"
QUARTER = (date(2026, 7, 1), date(2026, 9, 30))


def month_boundaries(year: int, months: range) -> list[date]:
    """Return the first and last day of each month in `months`."""
    days = []
    for month in months:
        following = date(year + month // 12, month % 12 + 1, 1)
        days += [date(year, month, 1), following - timedelta(days=1)]
    return days


SNAPSHOT_DAYS = month_boundaries(2026, range(4, 10))
PROVINCES = [
    "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏",
    "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西",
    "海南", "重庆", "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏",
    "新疆",
]  # fmt: skip
TARGET_SECONDS = 1.0
TARGET_RSS_MB = 1024


def bench_url() -> str:
    base = make_url(db_engine.server_url())
    return base.set(database=DATABASE).render_as_string(hide_password=False)


def conninfo(url: str) -> str:
    return db_engine.psycopg_conninfo(url)


def drop_database(url: str) -> None:
    maintenance = make_url(url).set(database="postgres")
    with psycopg.connect(
        conninfo(maintenance.render_as_string(hide_password=False)), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def step(label: str, started: float) -> None:
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def fill(url: str, cases: int, attempts: int, payments: int, promises: int) -> None:
    """Insert the reference rows, cases, attempts, promises and payments."""
    provinces = "ARRAY[" + ", ".join(f"'{p}'" for p in PROVINCES) + "]"
    statements = [
        (
            "reference rows",
            [
                "INSERT INTO creditors (name) SELECT 'Bank ' || g "
                "FROM generate_series(1, 5) g",
                "INSERT INTO batches (creditor_id, name, placement_date, file_name, "
                "file_sha256, file_size, mode, total_due) SELECT 1 + g % 5, "
                "'Batch ' || g, DATE '2025-09-01' + (g * 5), 'b.csv', '', 0, "
                "'valid-rows', 0 FROM generate_series(1, 60) g",
                "INSERT INTO teams (name) SELECT 'Team ' || g "
                "FROM generate_series(1, 10) g",
                "INSERT INTO users (username, display_name, password_hash, role, "
                "team_id) SELECT 'c' || g, 'c' || g, 'x', 'collector', 1 + g % 10 "
                "FROM generate_series(1, 200) g",
            ],
        ),
        (
            f"{cases:,} debtors",
            [
                "INSERT INTO debtors (id, creditor_id, name, province) "
                f"SELECT g, 1, 'D' || g, ({provinces})[1 + g % 31] "
                f"FROM generate_series(1, {cases}) g",
            ],
        ),
        (
            f"{cases:,} cases",
            [
                "INSERT INTO cases (id, creditor_id, batch_id, debtor_id, case_no, "
                "product, total_due, balance, overdue_since, dpd_at_placement, "
                "placement_date, status, segment, risk_grade, collector_id, team_id, "
                "assigned_at, first_contact_due_at, first_contact_at) "
                "SELECT g, 1 + (g % 60) % 5, 1 + g % 60, g, 'C' || g, "
                "(ARRAY['card','cash','auto','mortgage','sme'])[1 + g % 5], "
                "1000 + (g::bigint * 7919) % 49000, 1000 + (g::bigint * 7919) % 49000, "
                "b.placement_date - (1 + g % 170), 1 + g % 170, b.placement_date, "
                "(ARRAY['in_progress','in_progress','promised','assigned','paid',"
                "'written_off'])[1 + g % 6], "
                "(ARRAY['light','standard','heavy','special'])[1 + g % 4], "
                "(ARRAY['A','B','C','D','E'])[1 + g % 5], u.id, u.team_id, "
                "b.placement_date + time '10:00', "
                "b.placement_date + time '10:00' + interval '24 hours', "
                "b.placement_date + time '10:00' + (g % 40) * interval '1 hour' "
                f"FROM generate_series(1, {cases}) g "
                "JOIN batches b ON b.id = 1 + g % 60 "
                "JOIN users u ON u.id = 1 + g % 200",
                "UPDATE batches b SET total_due = s.total FROM (SELECT batch_id, "
                "sum(total_due) AS total FROM cases GROUP BY batch_id) s "
                "WHERE s.batch_id = b.id",
            ],
        ),
        (
            f"{attempts:,} attempts",
            [
                "INSERT INTO contact_attempts (case_id, debtor_id, collector_id, "
                "team_id, at, channel, target, result_code, connected, right_party) "
                f"SELECT c, c, 1 + c % 200, 1 + (1 + c % 200) % 10, "
                "TIMESTAMPTZ '2025-10-01 01:00+00' + (g % 365) * interval '1 day' "
                "+ (g % 11) * interval '1 hour', 'phone', 'debtor', "
                "(ARRAY['no_answer','no_answer','busy','third_party','promise',"
                "'refused'])[1 + g % 6], g % 6 >= 3, g % 6 >= 4 "
                f"FROM (SELECT g, 1 + (g::bigint * 104729) % {cases} AS c "
                f"FROM generate_series(1, {attempts}) g) s",
            ],
        ),
        (
            f"{promises:,} promises",
            [
                "INSERT INTO promises (case_id, collector_id, amount, due_on, status, "
                "paid_amount, created_at) "
                f"SELECT c, 1 + c % 200, 100 + g % 900, "
                "DATE '2025-10-05' + g % 360, "
                "(ARRAY['kept','broken','partly_kept','kept'])[1 + g % 4], 0, "
                "TIMESTAMPTZ '2025-10-01 02:00+00' + (g % 360) * interval '1 day' "
                f"FROM (SELECT g, 1 + (g::bigint * 7907) % {cases} AS c "
                f"FROM generate_series(1, {promises}) g) s",
            ],
        ),
        (
            f"{payments:,} payments",
            [
                "INSERT INTO payments (creditor_id, transaction_id, case_id, amount, "
                "paid_on, source, collector_id) "
                f"SELECT 1 + (c % 60) % 5, 'T' || g, c, 50 + g % 2000, "
                "DATE '2025-10-01' + g % 365, 'import', 1 + c % 200 "
                f"FROM (SELECT g, 1 + (g * 15485863::bigint) % {cases} AS c "
                f"FROM generate_series(1, {payments}) g) s",
            ],
        ),
    ]
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        for label, sqls in statements:
            started = time.perf_counter()
            for sql in sqls:
                conn.execute(sql)
            step(label, started)
        started = time.perf_counter()
        for table in ("debtors", "cases", "contact_attempts", "promises", "payments"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.execute("VACUUM ANALYZE")
        step("vacuum analyze", started)


def run_daily_jobs(url: str) -> None:
    """Take the month-boundary snapshots and refresh the sums, as the worker would."""
    from sqlalchemy.orm import Session

    from services import snapshots

    engine = db_engine.get_engine(url)
    for day in SNAPSHOT_DAYS:
        started = time.perf_counter()
        with Session(engine) as session:
            snapshots.daily_job(session, day)
        step(f"daily job {day}", started)
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        sizes = conn.execute(
            "SELECT (SELECT count(*) FROM case_snapshots), "
            "(SELECT count(*) FROM kpi_daily), "
            "(SELECT pg_size_pretty(pg_total_relation_size('case_snapshots')))"
        ).fetchone()
    print(
        f"  case_snapshots: {sizes[0]:,} rows ({sizes[2]}); "
        f"kpi_daily: {sizes[1]:,} rows"
    )


def time_baseline(url: str, runs: int) -> float:
    best = float("inf")
    with psycopg.connect(conninfo(url)) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute(
                "SELECT (SELECT sum(total_due) FROM cases), "
                "(SELECT sum(connected::int) FROM contact_attempts), "
                "(SELECT sum(amount) FROM payments)"
            ).fetchone()
            best = min(best, time.perf_counter() - started)
    return best


def page_calls(url: str, runs: int) -> dict:
    """Run the KPI page's service calls `runs` times; return the best time and RSS."""
    from sqlalchemy.orm import Session

    from services import kpi
    from services.actors import Actor

    engine = db_engine.get_engine(url)
    actor = Actor(id=None, username="bench", role="manager")
    filters = kpi.KpiFilter(date_from=QUARTER[0], date_to=QUARTER[1])
    timings = []
    for _ in range(runs):
        parts = {}
        with Session(engine) as session:
            for name, call in (
                (
                    "kpis",
                    lambda: kpi.kpis(session=session, actor=actor, filters=filters),
                ),
                *[
                    (
                        f"by {by}",
                        lambda by=by: kpi.breakdown(
                            session=session, actor=actor, filters=filters, by=by
                        ),
                    )
                    for by in ("collector", "province", "batch")
                ],
                (
                    "series",
                    lambda: kpi.time_series(
                        session=session, actor=actor, filters=filters
                    ),
                ),
                (
                    "vintage",
                    lambda: kpi.vintage(session=session, actor=actor, filters=filters),
                ),
            ):
                started = time.perf_counter()
                call()
                parts[name] = time.perf_counter() - started
        timings.append(parts)
    best = min(timings, key=lambda parts: sum(parts.values()))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"parts": best, "total": sum(best.values()), "rss_mb": rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5_000_000)
    parser.add_argument("--attempts", type=int, default=20_000_000)
    parser.add_argument("--payments", type=int, default=2_000_000)
    parser.add_argument("--promises", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the database")
    parser.add_argument("--page-calls", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.page_calls:
        print(json.dumps(page_calls(args.page_calls, args.runs)))
        return

    url = bench_url()
    print(
        f"KPI benchmark: {args.cases:,} cases, {args.attempts:,} attempts, "
        f"{args.payments:,} payments, {args.promises:,} promises",
        flush=True,
    )
    drop_database(url)
    migrate.upgrade(url)
    try:
        fill(url, args.cases, args.attempts, args.payments, args.promises)
        run_daily_jobs(url)
        baseline = time_baseline(url, args.runs)
        child = subprocess.run(
            [sys.executable, __file__, "--page-calls", url, "--runs", str(args.runs)],
            capture_output=True,
            text=True,
            check=True,
        )
        page = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep:
            drop_database(url)

    print(f"baseline, bare sum scan (best of {args.runs}): {baseline:.3f} s")
    for name, seconds in page["parts"].items():
        print(f"  {name}: {seconds * 1000:.0f} ms")
    print(
        f"page calls (best of {args.runs}): {page['total']:.3f} s, "
        f"{page['total'] / baseline:.3f} of the baseline; target under "
        f"{TARGET_SECONDS:.0f} s: "
        f"{'met' if page['total'] < TARGET_SECONDS else 'missed'}"
    )
    print(
        f"peak RSS of the page process: {page['rss_mb']:.0f} MB; target under "
        f"{TARGET_RSS_MB} MB: {'met' if page['rss_mb'] < TARGET_RSS_MB else 'missed'}"
    )


if __name__ == "__main__":
    main()
