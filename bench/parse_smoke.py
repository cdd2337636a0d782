"""Time `parse_cases` on a generated 1,000,000-row placement CSV.

Run: python bench/parse_smoke.py [rows] [--plain]. It prints the file size, the
median parse time of three runs with its CPU time, rows per second and peak memory.
The file has 21 columns in the shapes creditors send: ￥ and 元 amounts, ISO and 年月日
dates, phones written with +86, and ID numbers with valid check digits. One row in
1,000 has no total and is rejected. With --plain, phones and totals are written
plainly. This is a smoke check for speed, not a test.
"""

import io
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

# bench/queue.py would shadow the standard library's queue module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from services.files.intake import parse_cases  # noqa: E402

HEADER = (
    "案件编号,客户姓名,身份证号,手机号,地址,省份,城市,客户类型,产品类型,合同编号,"
    "剩余本金,利息,费用,欠款总额,逾期天数,首次逾期日期,联系人,联系人关系,联系人电话,"
    "备注,客户经理"
)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RUNS = 3


def build_csv(rows: int, plain: bool = False) -> bytes:
    """Build the CSV with polars expressions, so building takes seconds, not minutes.

    With `plain`, phones are bare 11-digit mobiles and totals plain numbers, which
    the readers handle on their fast path.
    """
    lines = _numbers(rows).select(
        pl.concat_str(
            [column.cast(pl.Utf8).fill_null("") for column in _columns(plain)],
            separator=",",
        ).alias("line")
    )

    buffer = io.BytesIO()
    buffer.write((HEADER + "\n").encode("utf-8"))
    lines.write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def _numbers(rows: int) -> pl.DataFrame:
    """Row index, amounts, and an 18-character ID number with its check digit."""
    index = pl.int_range(0, rows, eager=True).alias("i")
    frame = pl.DataFrame(index).with_columns(
        principal=(pl.col("i") * 7919 % 2_000_000) / 100 + 100,
        interest=(pl.col("i") * 31 % 100_000) / 100,
        id17=pl.format(
            "{}{}{}",
            pl.lit("440106"),
            (19600101 + pl.col("i") % 40 * 10000 + pl.col("i") % 12 * 100 + 1),
            (pl.col("i") % 1000).cast(pl.Utf8).str.zfill(3),
        ),
    )

    check = pl.sum_horizontal(
        pl.col("id17").str.slice(position, 1).cast(pl.Int32) * weight
        for position, weight in enumerate(WEIGHTS)
    )
    remainder = (check % 11).cast(pl.Int64)
    return frame.with_columns(check=pl.lit("10X98765432").str.slice(remainder, 1))


def _columns(plain: bool) -> list[pl.Expr]:
    """Return the expressions for the 21 cells of a row, in the order of HEADER."""
    row = pl.col("i")
    total = (pl.col("principal") + pl.col("interest") + 50).round(2).cast(pl.Utf8)
    phone = pl.format(
        "+86 138 {} {}", (row % 10000).cast(pl.Utf8).str.zfill(4), row % 9000 + 1000
    )
    if plain:
        phone = pl.format("138{}", (row % 100_000_000).cast(pl.Utf8).str.zfill(8))
    return [
        pl.format("C{}", row.cast(pl.Utf8).str.zfill(9)),
        pl.lit("张三"),
        pl.col("id17") + pl.col("check"),
        phone,
        pl.lit("广东省广州市天河区体育西路1号"),
        pl.lit("广东省"),
        pl.lit("广州"),
        pl.when(row % 5 == 0).then(pl.lit("企业")).otherwise(pl.lit("个人")),
        pl.lit("信用卡"),
        pl.format("HT{}", row),
        pl.col("principal").round(2).cast(pl.Utf8),
        pl.col("interest").round(2).cast(pl.Utf8),
        pl.lit("50.00"),
        pl.when(row % 1000 == 999)
        .then(pl.lit(""))
        .when(pl.lit(plain))
        .then(total)
        .when(row % 2 == 0)
        .then(pl.format('"￥{}"', total))
        .otherwise(pl.format("{}元", total)),
        (row % 400 + 1).cast(pl.Utf8),
        pl.when(row % 3 == 0)
        .then(pl.lit("2024年10月1日"))
        .otherwise(pl.lit("2024-10-01")),
        pl.lit("李四"),
        pl.lit("配偶"),
        pl.format("139{}", (row % 100_000_000).cast(pl.Utf8).str.zfill(8)),
        pl.when(row % 10 == 0).then(pl.lit('"客户称已还款,请核实"')),
        pl.lit("王五"),
    ]


def main() -> None:
    numbers = [argument for argument in sys.argv[1:] if argument.isdigit()]
    rows = int(numbers[0]) if numbers else 1_000_000
    plain = "--plain" in sys.argv
    started = time.perf_counter()
    content = build_csv(rows, plain)
    built = time.perf_counter() - started
    print(f"built {rows:,} rows, {len(content) / 2**20:.1f} MiB in {built:.1f} s")
    print(f"load average before parsing: {os.getloadavg()[0]:.1f}")

    timings = []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        parsed = parse_cases(content, "bench.csv", today=date(2024, 11, 15))
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))

    wall, cpu = sorted(timings)[len(timings) // 2]
    print(
        f"parsed in {wall:.2f} s (median of {RUNS}; CPU {cpu:.2f} s), "
        f"{rows / wall:,.0f} rows/s: {parsed.cases.height:,} cases, "
        f"{len(parsed.rejected):,} rejected, {len(parsed.warnings):,} warnings"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of this process: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
