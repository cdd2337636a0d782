"""Time a payment import of 1,000,000 rows against 1,000,000 cases.

Run: python bench/payments.py [--rows N] [--runs R] [--keep]. It creates the
database `recova_bench_payments` on the configured server (without DATABASE_URL, the
embedded one under $RECOVA_HOME/pgdata, with RECOVA_HOME defaulting to
.recova/bench), fills it with N cases, writes a payment file of N rows and then
times, in the same run:

- baseline: a raw COPY of the file into a temporary table plus one
  UPDATE cases ... FROM that table, in a transaction that is rolled back;
- import: `services.payments.import_payments` on the same bytes (parse, COPY to
  staging, repeat check, matching, reversals, payments, balances, statuses,
  overpayments, unmatched queue, audit), committed.

The baseline runs R times before the import and its best time is used. The file
has 0.1% unknown case numbers (unmatched), 0.1% reversals of earlier rows, and
every third payment clears its case. The target is an import within 4x of the
baseline. The database is dropped at the end unless --keep is given. This is a
measurement script, not a test.
"""

import argparse
import io
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import polars as pl
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's queue module, so the project root takes its place.
sys.path[0] = str(ROOT)
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402
from services import payments  # noqa: E402

DATABASE = "recova_bench_payments"
CREDITOR = "Bench Bank"
TARGET_RATIO = 4.0
UNKNOWN_EVERY = 1000
REVERSALS_PER_MILLION = 1000


def bench_url() -> str:
    base = make_url(db_engine.server_url())
    return base.set(database=DATABASE).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    maintenance = make_url(url).set(database="postgres", drivername="postgresql")
    with psycopg.connect(
        maintenance.render_as_string(hide_password=False), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def recreate_database(url: str) -> None:
    drop_database(url)
    migrate.upgrade(url)


def fill_cases(conninfo: str, rows: int) -> int:
    """Insert one creditor, one batch and `rows` cases, and return the creditor id."""
    with psycopg.connect(conninfo) as conn:
        creditor = conn.execute(
            "INSERT INTO creditors (name) VALUES (%s) RETURNING id", (CREDITOR,)
        ).fetchone()[0]
        batch = conn.execute(
            "INSERT INTO batches (creditor_id, name, placement_date, file_name,"
            " file_sha256, file_size, mode) VALUES (%s, 'bench', '2024-09-01',"
            " 'bench.csv', '', 0, 'valid-rows') RETURNING id",
            (creditor,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO debtors (id, creditor_id, name) "
            "SELECT g, %s, 'D' || g FROM generate_series(1, %s) g",
            (creditor, rows),
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('debtors', 'id'), %s)", (rows,)
        )
        conn.execute(
            "INSERT INTO cases (creditor_id, batch_id, debtor_id, case_no, total_due,"
            " balance, overdue_since, dpd_at_placement, placement_date, status) "
            "SELECT %s, %s, g, 'C' || lpad(g::text, 9, '0'), 1000 + g %% 5000,"
            " 1000 + g %% 5000, '2024-06-01', 92, '2024-09-01', 'assigned' "
            "FROM generate_series(1, %s) g",
            (creditor, batch, rows),
        )
        conn.execute("ANALYZE")
    return creditor


def payment_file(rows: int) -> bytes:
    """Build the payment CSV: mostly payments, some unknown cases, some reversals."""
    reversals = max(1, rows * REVERSALS_PER_MILLION // 1_000_000)
    g = pl.col("g")
    frame = pl.DataFrame(pl.int_range(1, rows - reversals + 1, eager=True).alias("g"))

    # Every third payment clears its case (balance 1000 + g % 5000); the others pay
    # 100.00. Every UNKNOWN_EVERY-th row names a case that does not exist.
    whole_yuan = pl.when(g % 3 == 0).then(1000 + g % 5000).otherwise(100)
    case_no = (
        pl.when(g % UNKNOWN_EVERY != 0)
        .then(pl.format("C{}", g.cast(pl.Utf8).str.zfill(9)))
        .otherwise(pl.format("X{}", g))
    )
    paid = frame.select(
        pl.format("T{}", g).alias("还款流水号"),
        case_no.alias("案件编号"),
        pl.format("{}.00", whole_yuan).alias("还款金额"),
        pl.lit("2024-12-01").alias("还款日期"),
        pl.lit("银行卡").alias("还款渠道"),
        pl.lit(None, dtype=pl.Utf8).alias("原流水号"),
    )

    # The reversals undo the first payments to known cases.
    originals = paid.filter(pl.col("案件编号").str.starts_with("C")).head(reversals)
    reversed_rows = originals.select(
        pl.format("R{}", pl.int_range(1, pl.len() + 1)).alias("还款流水号"),
        pl.col("案件编号"),
        (pl.lit("-") + pl.col("还款金额")).alias("还款金额"),
        pl.lit("2024-12-02").alias("还款日期"),
        pl.col("还款渠道"),
        pl.col("还款流水号").alias("原流水号"),
    )

    buffer = io.BytesIO()
    pl.concat([paid, reversed_rows]).write_csv(buffer)
    return buffer.getvalue()


def time_baseline(conninfo: str, creditor: int, content: bytes) -> float:
    """Time a COPY of the raw file plus one UPDATE ... FROM, then roll both back."""
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TEMP TABLE raw_payments (transaction_id text, case_no text,"
            " amount numeric(14,2), paid_on date, channel text, original text)"
        )
        with conn.cursor().copy(
            "COPY raw_payments FROM STDIN (FORMAT csv, HEADER true)"
        ) as copy:
            copy.write(content)
        conn.execute(
            "UPDATE cases c SET balance = c.balance - r.amount FROM raw_payments r "
            "WHERE c.creditor_id = %s AND c.case_no = r.case_no",
            (creditor,),
        )
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed


def time_import(url: str, content: bytes) -> tuple[float, payments.PaymentReport]:
    os.environ["DATABASE_URL"] = url
    factory = db_engine.session_factory(db_engine.get_engine(url))
    started = time.perf_counter()
    with factory() as session:
        report = payments.import_payments(
            session=session,
            actor=payments.finance_operator("bench"),
            request=payments.PaymentImportRequest(creditor=CREDITOR),
            content=content,
            filename="bench-payments.csv",
        )
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="cases and payment rows (default 1,000,000)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the benchmark database instead of dropping it at the end",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        help="baseline runs before the import (default 2)",
    )
    args = parser.parse_args()

    url = bench_url()
    conninfo = db_engine.psycopg_conninfo(url)
    print(f"database {DATABASE}: creating {args.rows:,} cases", flush=True)
    recreate_database(url)
    started = time.perf_counter()
    creditor = fill_cases(conninfo, args.rows)
    print(f"cases ready in {time.perf_counter() - started:.1f} s", flush=True)

    content = payment_file(args.rows)
    print(f"payment file: {args.rows:,} rows, {len(content) / 2**20:.1f} MiB")

    baseline = min(time_baseline(conninfo, creditor, content) for _ in range(args.runs))
    print(
        f"baseline COPY + UPDATE ... FROM: {baseline:.2f} s "
        f"({args.rows / baseline:,.0f} rows/s)",
        flush=True,
    )

    elapsed, report = time_import(url, content)
    ratio = elapsed / baseline
    print(f"import_payments: {elapsed:.2f} s ({args.rows / elapsed:,.0f} rows/s)")
    print(
        f"  posted {report.posted:,}, unmatched {len(report.unmatched):,}, "
        f"rejected {len(report.rejected):,}, paid in full "
        f"{len(report.paid_in_full):,}, recovered {report.recovered_total:,}"
    )
    print(
        f"ratio {ratio:.2f}x (target within {TARGET_RATIO:.0f}x): "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}"
    )
    db_engine.get_engine(url).dispose()
    if not args.keep:
        drop_database(url)
    if report.recovered_total <= Decimal(0):
        raise SystemExit("the import recovered nothing; the benchmark is broken")


if __name__ == "__main__":
    main()
