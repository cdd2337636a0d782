"""Measure case intake against raw COPY, pandas `to_sql` and the SQLAlchemy ORM.

Run: .venv/bin/python bench/intake.py [--rows N] [--slice M] [--seed S] [--json]

One run generates a placement CSV of N cases in a temporary folder, recreates the
database `recova_bench` on the configured server (embedded PostgreSQL under
$RECOVA_HOME/pgdata when DATABASE_URL is unset; RECOVA_HOME defaults to
.recova/bench in the repository) and times:

1. raw COPY of the whole file into a table of text columns with no index;
2. the full import of the whole file through `services.intake.import_cases`, in a
   child process so that its peak resident memory can be read;
3. pandas `read_csv` + `to_sql` (default method, chunks of 10,000) of the first M rows;
4. SQLAlchemy ORM `add_all` + commit of the first M rows.

It prints the figures, the ratios the intake targets are about and the machine. It
exits with status 1 when the import's counts or its sum of total_due differ from
what the generator wrote. With --json the record goes to stdout as JSON and the
tables go to stderr. Every step runs once, so repeat the run before trusting a
difference of a few percent.
"""

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's queue module, so the project root takes its place.
sys.path[0] = str(ROOT)
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import Engine, create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from db import migrate  # noqa: E402
from db.engine import psycopg_conninfo, server_url  # noqa: E402
from recova.settings import get_settings  # noqa: E402

logger = logging.getLogger("bench.intake")

BENCH_DATABASE = "recova_bench"
CREDITOR = "基准测试银行"
DEFAULT_ROWS = 1_000_000
DEFAULT_SLICE = 100_000
DEFAULT_SEED = 20241201
PANDAS_CHUNK_ROWS = 10_000
COPY_BLOCK_BYTES = 1 << 20

# Intake targets: import time at most 3x raw COPY, per-row speed at least 5x pandas
# and 50x the ORM, and peak resident memory of the importing process under 2 GiB.
MAX_COPY_RATIO = 3.0
MIN_PANDAS_RATIO = 5.0
MIN_ORM_RATIO = 50.0
MAX_PEAK_MIB = 2048.0

# Header of the generated file -> column name in the baseline tables.
COLUMNS = {
    "案件编号": "case_no",
    "客户姓名": "name",
    "身份证号": "id_number",
    "手机号": "phone",
    "联系人": "contact_name",
    "联系人关系": "contact_relation",
    "联系人电话": "contact_phone",
    "省份": "province",
    "城市": "city",
    "产品类型": "product",
    "合同编号": "contract_no",
    "剩余本金": "principal",
    "利息": "interest",
    "费用": "fees",
    "欠款总额": "total_due",
    "逾期天数": "dpd",
    "客户类型": "customer_type",
    "客户经理": "account_manager",
}

# ID number region code, province and city of a debtor's registered residence.
REGIONS = [
    (110101, "北京市", "北京"),
    (120101, "天津市", "天津"),
    (310104, "上海市", "上海"),
    (500103, "重庆市", "重庆"),
    (440106, "广东省", "广州"),
    (440305, "广东省", "深圳"),
    (330106, "浙江省", "杭州"),
    (320102, "江苏省", "南京"),
    (320505, "江苏省", "苏州"),
    (510104, "四川省", "成都"),
    (420106, "湖北省", "武汉"),
    (610113, "陕西省", "西安"),
    (370102, "山东省", "济南"),
    (410105, "河南省", "郑州"),
    (430104, "湖南省", "长沙"),
    (350203, "福建省", "厦门"),
    (210102, "辽宁省", "沈阳"),
    (450103, "广西壮族自治区", "南宁"),
]
# Names are drawn as random combinations of these common characters, not taken from
# any list of people.
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
)
GIVEN_CHARS = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏飞辉志文斌宇浩凯婷"
)
RELATIONS = ["配偶", "父亲", "母亲", "兄弟", "姐妹", "朋友", "同事", "子女"]
PRODUCTS = ["信用卡", "消费贷", "现金贷", "车贷", "经营贷"]
MOBILE_PREFIXES = list(range(130, 140)) + [150, 151, 152, 155, 158, 177, 186, 188, 199]
ACCOUNT_MANAGERS = [
    SURNAMES[index] + GIVEN_CHARS[index * 7 % len(GIVEN_CHARS)]
    for index in range(len(SURNAMES))
]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = list("0123456789X")
BIRTH_START = np.datetime64("1960-01-01")
BIRTH_DAYS = int((np.datetime64("2003-12-31") - BIRTH_START).astype(np.int64))

# Share of rows written in each special form. The other rows use the plain form.
REPEAT_DEBTOR_SHARE = 0.08
WRONG_CHECK_DIGIT_SHARE = 0.002
NAME_BLANK_SHARE = 0.002
CONTACT_BLANK_SHARE = 0.05
COMPANY_SHARE = 0.05
DPD_WITH_UNIT_SHARE = 0.1
BAD_ROW_SHARE = 0.01
# Faults that reject a row, named by the import's issue codes. A bad row has one.
BAD_KINDS = (
    "case_no_missing",
    "case_no_duplicate",
    "amount_unreadable",
    "total_due_not_positive",
    "overdue_missing",
    "dpd_unreadable",
    "id_number_lost_digits",
)


@dataclass
class Placement:
    """A generated placement file and what a correct import of it must produce."""

    path: Path
    rows: int
    size_bytes: int
    valid_rows: int
    valid_total_due: Decimal
    bad_rows: dict[str, int]
    seconds: float


@dataclass
class Step:
    """One timed load: what was loaded, how many rows and how long it took."""

    name: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


# --- Generating the placement file -------------------------------------------------


def pick(options: list[str], index: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(options, dtype=pl.Utf8)).gather(index)


def as_text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Utf8)


def money_text(cents: pl.Expr) -> pl.Expr:
    """Format non-negative cents as yuan with two decimals (1234567 -> 12345.67)."""
    return pl.concat_str(
        (cents // 100).cast(pl.Utf8),
        pl.lit("."),
        (cents % 100).cast(pl.Utf8).str.zfill(2),
    )


def grouped_money_text(cents: pl.Expr) -> pl.Expr:
    """Format non-negative cents with thousands separators (123456789 -> 1,234,567.89).

    Written for totals below one billion yuan.
    """
    yuan = cents // 100
    millions = (yuan // 1_000_000).cast(pl.Utf8)
    thousands = (yuan // 1000 % 1000).cast(pl.Utf8)
    units = (yuan % 1000).cast(pl.Utf8).str.zfill(3)
    whole = (
        pl.when(yuan >= 1_000_000)
        .then(pl.concat_str(millions, thousands.str.zfill(3), units, separator=","))
        .when(yuan >= 1000)
        .then(pl.concat_str(thousands, units, separator=","))
        .otherwise(yuan.cast(pl.Utf8))
    )
    return pl.concat_str(whole, pl.lit("."), (cents % 100).cast(pl.Utf8).str.zfill(2))


def id_numbers(keys: np.ndarray, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the first 17 digits of each ID number as one integer, and its check value.

    The birth date and the 3-digit sequence number come from the key, so distinct
    keys below 1000 * BIRTH_DAYS give distinct ID numbers. The check value (0-10, 10
    written X) follows GB 11643: (12 - sum(digit * weight) mod 11) mod 11.
    """
    births = BIRTH_START + (keys // 1000) % BIRTH_DAYS
    year = births.astype("datetime64[Y]").astype(np.int64) + 1970
    month = births.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (births - births.astype("datetime64[M]")).astype(np.int64) + 1
    body = regions * 10**11 + (year * 10_000 + month * 100 + day) * 1000 + keys % 1000

    weighted = np.zeros(len(keys), dtype=np.int64)
    for position, weight in enumerate(ID_WEIGHTS):
        weighted += (body // 10 ** (16 - position)) % 10 * weight
    return body, (12 - weighted % 11) % 11


def debtor_numbers(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the debtors 0..rows-1: name parts, ID number, region and mobile number."""
    if rows > 1000 * BIRTH_DAYS:
        raise SystemExit(f"--rows above {1000 * BIRTH_DAYS:,} would repeat ID numbers")
    spread = 1000 * BIRTH_DAYS // rows
    keys = rng.permutation(rows).astype(np.int64) * spread + rng.integers(
        0, spread, rows
    )
    region = rng.integers(0, len(REGIONS), rows)
    codes = np.array([code for code, _, _ in REGIONS], dtype=np.int64)
    id_body, id_check = id_numbers(keys, codes[region])
    return {
        "surname": rng.integers(0, len(SURNAMES), rows),
        "given_1": rng.integers(0, len(GIVEN_CHARS), rows),
        "given_2": rng.integers(-len(GIVEN_CHARS), len(GIVEN_CHARS), rows),
        "id_body": id_body,
        "id_check": id_check,
        "region": region,
        "mobile": mobile_numbers(rows, rng),
    }


def mobile_numbers(rows: int, rng: np.random.Generator) -> np.ndarray:
    prefixes = np.array(MOBILE_PREFIXES, dtype=np.int64)
    return prefixes[rng.integers(0, len(prefixes), rows)] * 10**8 + rng.integers(
        0, 10**8, rows
    )


def case_debtors(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Give each case a debtor. About 8% of cases reuse an earlier case's debtor."""
    debtor = np.arange(rows)
    repeat = rng.random(rows) < REPEAT_DEBTOR_SHARE
    repeat[0] = False
    earlier = np.nonzero(repeat)[0]
    debtor[repeat] = (rng.random(len(earlier)) * earlier).astype(np.int64)
    return debtor


def bad_row_kinds(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Return the index into BAD_KINDS per row, or -1 for a good row.

    Only odd rows (0-based) go bad, so the row before a bad row is always good. A
    duplicate case number therefore copies a number that the file keeps.
    """
    odd = np.arange(rows) % 2 == 1
    bad = odd & (rng.random(rows) < 2 * BAD_ROW_SHARE)
    return np.where(bad, rng.integers(0, len(BAD_KINDS), rows), -1)


def placement_numbers(rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """Draw every random number the file needs, one row per case."""
    debtors = debtor_numbers(rows, rng)
    debtor = case_debtors(rows, rng)
    contacts = debtor_numbers(rows, rng)
    principal = rng.integers(50_000, 20_000_000, rows)
    interest = (principal * rng.uniform(0.0, 0.2, rows)).astype(np.int64)
    fees = np.array([0, 5_000, 10_000, 20_000, 50_000])[rng.integers(0, 5, rows)]

    id_check = debtors["id_check"][debtor]
    wrong = rng.random(rows) < WRONG_CHECK_DIGIT_SHARE
    # The wrong check value is never 0, because the import reads an ID that ends in
    # 000 and fails the check as one that lost digits in a spreadsheet, and rejects it.
    wrong_check = np.where((id_check + 1) % 11 == 0, 1, (id_check + 1) % 11)
    return pl.DataFrame(
        {
            "number": np.arange(1, rows + 1),
            **{name: values[debtor] for name, values in debtors.items()},
            "id_check": np.where(wrong, wrong_check, id_check),
            "name_blank": rng.random(rows) < NAME_BLANK_SHARE,
            "phone_style": rng.integers(0, 200, rows),
            "contact_surname": contacts["surname"],
            "contact_given_1": contacts["given_1"],
            "contact_given_2": contacts["given_2"],
            "contact_mobile": contacts["mobile"],
            "contact_relation": rng.integers(0, len(RELATIONS), rows),
            "contact_blank": rng.random(rows) < CONTACT_BLANK_SHARE,
            "product": rng.integers(0, len(PRODUCTS), rows),
            "contract": 2_023_000_000_000 + rng.integers(0, 10**9, rows),
            "principal": principal,
            "interest": interest,
            "fees": fees,
            "total_due": principal + interest + fees,
            "total_style": rng.integers(0, 20, rows),
            "dpd": rng.integers(1, 721, rows),
            "dpd_unit": rng.random(rows) < DPD_WITH_UNIT_SHARE,
            "company": rng.random(rows) < COMPANY_SHARE,
            "manager": rng.integers(0, len(ACCOUNT_MANAGERS), rows),
            "bad": bad_row_kinds(rows, rng),
        }
    )


def person_name(prefix: str) -> pl.Expr:
    """Build a surname and one given character, or two when given_2 is not negative."""
    second = pl.col(f"{prefix}given_2")
    return pl.concat_str(
        pick(SURNAMES, pl.col(f"{prefix}surname")),
        pick(GIVEN_CHARS, pl.col(f"{prefix}given_1")),
        pl.when(second >= 0)
        .then(pick(GIVEN_CHARS, second.clip(0)))
        .otherwise(pl.lit("")),
    )


def phone_text(mobile: pl.Expr, style: pl.Expr) -> pl.Expr:
    """Write mobile numbers in the forms creditors send.

    10% as +86 138 1234 5678, 5% as 138-1234-5678, 3% blank, 0.5% cut to 7 digits
    (the import warns about those) and the rest as 11 plain digits.
    """
    plain = mobile.cast(pl.Utf8)
    parts = [plain.str.slice(0, 3), plain.str.slice(3, 4), plain.str.slice(7, 4)]
    return (
        pl.when(style < 20)
        .then(pl.concat_str(pl.lit("+86"), *parts, separator=" "))
        .when(style < 30)
        .then(pl.concat_str(*parts, separator="-"))
        .when(style < 36)
        .then(None)
        .when(style < 37)
        .then(plain.str.slice(0, 7))
        .otherwise(plain)
    )


def total_due_text(cents: pl.Expr, style: pl.Expr) -> pl.Expr:
    """Write 15% of totals as ￥12,345.67, 15% as 12345.67元 and the rest plainly."""
    return (
        pl.when(style < 3)
        .then(pl.lit("￥") + grouped_money_text(cents))
        .when(style < 6)
        .then(money_text(cents) + pl.lit("元"))
        .otherwise(money_text(cents))
    )


def good_columns() -> list[pl.Expr]:
    """Return the file's columns, in COLUMNS order, as the creditor would write them."""
    contact_blank = pl.col("contact_blank")
    dpd = as_text("dpd")
    return [
        pl.lit("RB") + as_text("number").str.zfill(9),
        pl.when(pl.col("name_blank")).then(None).otherwise(person_name("")),
        as_text("id_body") + pick(ID_CHECK_CHARS, pl.col("id_check")),
        phone_text(pl.col("mobile"), pl.col("phone_style")),
        pl.when(contact_blank).then(None).otherwise(person_name("contact_")),
        pl.when(contact_blank)
        .then(None)
        .otherwise(pick(RELATIONS, pl.col("contact_relation"))),
        pl.when(contact_blank).then(None).otherwise(as_text("contact_mobile")),
        pick([province for _, province, _ in REGIONS], pl.col("region")),
        pick([city for _, _, city in REGIONS], pl.col("region")),
        pick(PRODUCTS, pl.col("product")),
        pl.lit("HT") + as_text("contract"),
        money_text(pl.col("principal")),
        money_text(pl.col("interest")),
        money_text(pl.col("fees")),
        total_due_text(pl.col("total_due"), pl.col("total_style")),
        pl.when(pl.col("dpd_unit")).then(dpd + pl.lit("天")).otherwise(dpd),
        pl.when(pl.col("company")).then(pl.lit("企业")).otherwise(pl.lit("个人")),
        pick(ACCOUNT_MANAGERS, pl.col("manager")),
    ]


def spoil(column: str, good: pl.Expr) -> pl.Expr:
    """Apply the bad-row faults that concern `column` to its good text."""
    faults = {
        "case_no": {
            "case_no_missing": pl.lit(None, dtype=pl.Utf8),
            "case_no_duplicate": good.shift(1),
        },
        "total_due": {
            "amount_unreadable": pl.lit("待核实"),
            "total_due_not_positive": pl.lit("0.00"),
        },
        "dpd": {
            "overdue_missing": pl.lit(None, dtype=pl.Utf8),
            "dpd_unreadable": pl.lit("未知"),
        },
        "id_number": {
            # A spreadsheet number cell written back as text: 4.40106E+17.
            "id_number_lost_digits": pl.concat_str(
                good.str.slice(0, 1), pl.lit("."), good.str.slice(1, 5), pl.lit("E+17")
            ),
        },
    }.get(column, {})
    spoiled = good
    for kind, bad_text in faults.items():
        is_kind = pl.col("bad") == BAD_KINDS.index(kind)
        spoiled = pl.when(is_kind).then(bad_text).otherwise(spoiled)
    return spoiled


def generate_placement(rows: int, seed: int, folder: Path) -> Placement:
    """Write the placement CSV and return it with the import's expected result."""
    started = time.perf_counter()
    numbers = placement_numbers(rows, np.random.default_rng(seed))
    texts = numbers.select(
        spoil(name, good).alias(header)
        for (header, name), good in zip(COLUMNS.items(), good_columns(), strict=True)
    )
    path = folder / f"placement_{rows}.csv"
    texts.write_csv(path)

    good = numbers.filter(pl.col("bad") < 0)
    kinds = numbers.filter(pl.col("bad") >= 0).get_column("bad").value_counts()
    bad_rows = dict.fromkeys(BAD_KINDS, 0)
    for index, count in kinds.iter_rows():
        bad_rows[BAD_KINDS[index]] = count
    return Placement(
        path=path,
        rows=rows,
        size_bytes=path.stat().st_size,
        valid_rows=good.height,
        valid_total_due=Decimal(int(good.get_column("total_due").sum())).scaleb(-2),
        bad_rows=bad_rows,
        seconds=time.perf_counter() - started,
    )


# --- Database -----------------------------------------------------------------------


def recreate_database(url: str) -> None:
    """Drop and create the bench database, then migrate it to the current schema."""
    target = make_url(url)
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(psycopg_conninfo(maintenance), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target.database}"')
    migrate.upgrade(url)


def checkpoint(url: str) -> None:
    """Flush dirty pages, so that one step's writes are not paid for by the next."""
    with psycopg.connect(psycopg_conninfo(url), autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            logger.warning(
                "CHECKPOINT failed because the role is not a superuser, so the "
                "previous step's writes may be flushed during the next one"
            )


# --- Baselines ----------------------------------------------------------------------


class BenchBase(DeclarativeBase):
    pass


class BenchCase(BenchBase):
    """A case row as plain text columns, for the ORM baseline only."""

    __tablename__ = "bench_orm_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str | None]
    name: Mapped[str | None]
    id_number: Mapped[str | None]
    phone: Mapped[str | None]
    contact_name: Mapped[str | None]
    contact_relation: Mapped[str | None]
    contact_phone: Mapped[str | None]
    province: Mapped[str | None]
    city: Mapped[str | None]
    product: Mapped[str | None]
    contract_no: Mapped[str | None]
    principal: Mapped[str | None]
    interest: Mapped[str | None]
    fees: Mapped[str | None]
    total_due: Mapped[str | None]
    dpd: Mapped[str | None]
    customer_type: Mapped[str | None]
    account_manager: Mapped[str | None]


def time_raw_copy(url: str, path: Path, rows: int) -> Step:
    """COPY the file as it is into a table of text columns with no index."""
    columns = ", ".join(f"{name} text" for name in COLUMNS.values())
    with psycopg.connect(psycopg_conninfo(url)) as conn:
        conn.execute(f"CREATE TABLE bench_copy ({columns})")
        conn.commit()

        started = time.perf_counter()
        statement = "COPY bench_copy FROM STDIN (FORMAT csv, HEADER true)"
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            with path.open("rb") as source:
                while block := source.read(COPY_BLOCK_BYTES):
                    copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - started

        loaded = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
    if loaded != rows:
        raise SystemExit(f"raw COPY loaded {loaded:,} rows, expected {rows:,}")
    return Step("raw COPY into a text table, no index", rows, seconds)


def time_pandas(engine: Engine, path: Path, rows: int) -> Step:
    """Read the first `rows` rows with pandas and write them with `to_sql`.

    Every column is read as text (dtype=str), because pandas' type inference would
    turn ID numbers into floats and lose their last digits.
    """
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(path, nrows=rows, dtype=str)
    frame.columns = list(COLUMNS.values())
    frame.to_sql("bench_pandas", engine, index=False, chunksize=PANDAS_CHUNK_ROWS)
    seconds = time.perf_counter() - started
    return Step("pandas read_csv + to_sql, chunksize 10,000", rows, seconds)


def time_orm(engine: Engine, path: Path, rows: int) -> Step:
    """Add the first `rows` rows as ORM objects and commit them.

    The timer covers building the objects, `add_all` and the commit. Reading the
    rows into dicts happens before the timer starts.
    """
    records = (
        pl.read_csv(path, n_rows=rows, infer_schema=False).rename(COLUMNS).to_dicts()
    )
    BenchBase.metadata.create_all(engine)

    started = time.perf_counter()
    with Session(engine) as session:
        session.add_all([BenchCase(**record) for record in records])
        session.commit()
    seconds = time.perf_counter() - started
    return Step("SQLAlchemy ORM add_all + commit", rows, seconds)


# --- The import, in a child process --------------------------------------------------

# A statement's stage is the first table it writes, such as "INSERT INTO cases".
# SELECT ... FOR UPDATE locks rows and ON CONFLICT DO UPDATE follows an INSERT, so
# neither counts as an UPDATE.
WRITE_PATTERN = re.compile(
    r"\b(INSERT\s+INTO|(?<!FOR )(?<!DO )UPDATE|DELETE\s+FROM|CREATE\s+TEMP\s+TABLE)"
    r"\s+(\w+)",
    re.IGNORECASE,
)
READS = "other statements (reads, locks)"
PARSE = "parse and check in polars, build issue messages"
COPY = "COPY INTO intake_staging"
REST = "commit and the rest"


def statement_stage(statement: str) -> str:
    match = WRITE_PATTERN.search(statement)
    if match is None:
        return READS
    return f"{' '.join(match.group(1).upper().split())} {match.group(2)}"


@dataclass
class Stage:
    """Time spent in one stage of the import and the peak memory after it."""

    name: str
    statements: int = 0
    seconds: float = 0.0
    peak_rss_mib: float = 0.0


class ImportTimeline:
    """Times the stages of one import from outside services.intake.

    SQLAlchemy cursor events time each SQL statement, grouped by the table it
    writes. The progress callback marks the end of parsing (the first "write"
    call) and each COPY chunk sent to the staging table (the later "write" calls).
    COPY runs on the raw driver cursor, so the progress calls time it instead of the
    cursor events.
    """

    def __init__(self, engine: Engine) -> None:
        self.stages: dict[str, Stage] = {PARSE: Stage(PARSE)}
        self.started = time.perf_counter()
        self.parsed = False
        self.copy_from: float | None = None
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _add(self, name: str, seconds: float, statements: int = 0) -> None:
        stage = self.stages.setdefault(name, Stage(name))
        stage.statements += statements
        stage.seconds += seconds
        stage.peak_rss_mib = memory_mib("VmHWM")

    def progress(self, fraction: float, stage: str) -> None:
        now = time.perf_counter()
        if stage != "write":
            return
        if not self.parsed:
            in_statements = sum(item.seconds for item in self.stages.values())
            self._add(PARSE, now - self.started - in_statements)
            self.parsed = True
        elif self.copy_from is not None:
            self._add(COPY, now - self.copy_from)
            self.copy_from = now

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        now = time.perf_counter()
        name = statement_stage(statement)
        self._add(name, now - conn.info.pop("bench_started"), statements=1)
        if name.startswith("CREATE TEMP TABLE"):
            self.copy_from = now

    def summary(self, seconds: float) -> list[dict[str, Any]]:
        """Return the stages in the order they first ran, then what no timer saw."""
        seen = sum(stage.seconds for stage in self.stages.values())
        self._add(REST, seconds - seen)
        return [asdict(stage) for stage in self.stages.values()]


def memory_mib(field: str) -> float:
    """Return a memory figure of this process (VmRSS, VmHWM) from /proc, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def code_fingerprint() -> dict[str, str]:
    """Return the git commit and a hash of services/ and db/ as they are on disk.

    The hash names the code a record measured, uncommitted edits included.
    """
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("services/**/*.py"), *ROOT.glob("db/**/*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False)
    return {
        "commit": commit.stdout.strip() or "none",
        "services_db_sha256": digest.hexdigest()[:12],
    }


def run_child(path: Path) -> int:
    """Import the file once and print the result as one line of JSON."""
    from services.actors import Actor
    from services.intake import ImportRequest, import_cases

    code = code_fingerprint()
    engine = create_engine(server_url(BENCH_DATABASE))
    content = path.read_bytes()
    rss_before = memory_mib("VmRSS")

    with Session(engine) as session:
        timeline = ImportTimeline(engine)
        started = timeline.started
        report = import_cases(
            session=session,
            actor=Actor.operator("bench"),
            request=ImportRequest(creditor=CREDITOR),
            content=content,
            filename=path.name,
            progress=timeline.progress,
        )
        seconds = time.perf_counter() - started

    rejected_rows: dict[str, set[int]] = {}
    for issue in report.rejected:
        rejected_rows.setdefault(issue["code"], set()).add(issue["row"])
    result = {
        "code": code,
        "batch_id": report.batch_id,
        "data_rows": report.data_rows,
        "imported": report.imported,
        "rejected_rows": len({issue["row"] for issue in report.rejected}),
        "rejected_by_code": {
            issue_code: len(rows) for issue_code, rows in rejected_rows.items()
        },
        "warnings": len(report.warnings),
        "skipped_existing": len(report.skipped_existing),
        "file_issues": len(report.file_issues),
        "total_due_imported": str(report.total_due_imported),
        "seconds": seconds,
        "stages": timeline.summary(seconds),
        "rss_before_import_mib": rss_before,
        "child_vm_hwm_mib": memory_mib("VmHWM"),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


def run_import(path: Path) -> dict[str, Any]:
    """Run the import in a child process and add its peak resident memory to the result.

    The peak is ru_maxrss of the waited-for children, so it covers the whole child
    (interpreter, libraries, the file's bytes and every frame) but not the
    PostgreSQL server process that executes the statements.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(
            f"the import child process failed with exit status "
            f"{completed.returncode}; its traceback is printed above"
        )

    result = json.loads(completed.stdout.strip().splitlines()[-1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mib"] = peak_kib / 1024
    return result


# --- Checks, machine and report ----------------------------------------------------


def check_import(
    engine: Engine, placement: Placement, result: dict[str, Any]
) -> list[str]:
    """Compare the import with what the generator wrote and return each difference."""
    with engine.connect() as conn:
        stored_rows, stored_total = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(total_due), 0) FROM cases "
                "WHERE batch_id = :batch"
            ),
            {"batch": result["batch_id"]},
        ).one()

    accounted = (
        result["imported"] + result["rejected_rows"] + result["skipped_existing"]
    )
    expected_rejections = {
        code: count for code, count in placement.bad_rows.items() if count
    }
    comparisons = [
        ("data rows", result["data_rows"], placement.rows),
        ("imported + rejected + skipped rows", accounted, result["data_rows"]),
        ("imported rows", result["imported"], placement.valid_rows),
        (
            "rejected rows per issue code",
            result["rejected_by_code"],
            expected_rejections,
        ),
        ("case rows in the database", stored_rows, placement.valid_rows),
        ("sum of total_due in the database", stored_total, placement.valid_total_due),
        (
            "total_due in the import report",
            Decimal(result["total_due_imported"]),
            placement.valid_total_due,
        ),
    ]
    return [
        f"{name}: got {got}, expected {expected}"
        for name, got, expected in comparisons
        if got != expected
    ]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def describe_machine(engine: Engine) -> dict[str, Any]:
    settings = get_settings()
    with engine.connect() as conn:
        server = {
            name: conn.scalar(text(f"SHOW {name}"))
            for name in ("server_version", "shared_buffers", "max_wal_size", "fsync")
        }
    if settings.database_url:
        url = make_url(settings.database_url)
        where = f"DATABASE_URL, host {url.host or 'local socket'}"
    else:
        where = f"embedded, data in {settings.home.expanduser().resolve() / 'pgdata'}"
    return {
        # Other processes compete for the cores. A load above the core count slows
        # every step down compared with an idle machine.
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib(), 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": server.pop("server_version"),
        "postgresql_settings": server,
        "server": where,
        "libraries": {
            name: metadata.version(name)
            for name in ("polars", "pandas", "sqlalchemy", "psycopg")
        },
    }


def target_rows(
    steps: dict[str, Step], imported: dict[str, Any]
) -> list[dict[str, Any]]:
    full = steps["import"]
    copy_ratio = full.seconds / steps["copy"].seconds
    pandas_ratio = full.rows_per_second / steps["pandas"].rows_per_second
    orm_ratio = full.rows_per_second / steps["orm"].rows_per_second
    peak = imported["peak_rss_mib"]
    return [
        {
            "target": "import time / raw COPY time",
            "measured": round(copy_ratio, 2),
            "goal": f"<= {MAX_COPY_RATIO:g}",
            "met": copy_ratio <= MAX_COPY_RATIO,
        },
        {
            "target": "import rows/s / pandas rows/s",
            "measured": round(pandas_ratio, 2),
            "goal": f">= {MIN_PANDAS_RATIO:g}",
            "met": pandas_ratio >= MIN_PANDAS_RATIO,
        },
        {
            "target": "import rows/s / ORM rows/s",
            "measured": round(orm_ratio, 2),
            "goal": f">= {MIN_ORM_RATIO:g}",
            "met": orm_ratio >= MIN_ORM_RATIO,
        },
        {
            "target": "import peak RSS (MiB)",
            "measured": round(peak),
            "goal": f"< {MAX_PEAK_MIB:,.0f}",
            "met": peak < MAX_PEAK_MIB,
        },
    ]


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    settings = ", ".join(
        f"{name} {value}" for name, value in machine["postgresql_settings"].items()
    )
    libraries = ", ".join(
        f"{name} {version}" for name, version in machine["libraries"].items()
    )
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gib']} GiB RAM, {machine['os']}; 1-minute load average "
        f"{machine['load_average_1min_at_start']} at the start and "
        f"{machine['load_average_1min_at_end']} at the end. Python "
        f"{machine['python']}, PostgreSQL {machine['postgresql']} "
        f"({machine['server']}; {settings}), {libraries}."
    )


def render(record: dict[str, Any]) -> str:
    """Return the record as Markdown tables."""
    placement = record["placement"]
    imported = record["import"]
    steps = markdown_table(
        ["step", "rows", "seconds", "rows/s"],
        [
            [
                step["name"],
                f"{step['rows']:,}",
                f"{step['seconds']:.2f}",
                f"{step['rows_per_second']:,.0f}",
            ]
            for step in record["steps"].values()
        ],
    )
    targets = markdown_table(
        ["target", "measured", "goal", "met"],
        [
            [
                row["target"],
                f"{row['measured']:,}",
                row["goal"],
                "yes" if row["met"] else "no",
            ]
            for row in record["targets"]
        ],
    )
    stages = markdown_table(
        ["import stage", "statements", "seconds", "share", "peak RSS after (MiB)"],
        [
            [
                stage["name"],
                stage["statements"] or "",
                f"{stage['seconds']:.2f}",
                f"{stage['seconds'] / imported['seconds']:.0%}",
                f"{stage['peak_rss_mib']:,.0f}",
            ]
            for stage in imported["stages"]
        ],
    )
    checks = record["problems"] or ["all checks passed"]
    return "\n\n".join(
        [
            f"Case intake: {placement['rows']:,} rows "
            f"({placement['size_bytes'] / 2**20:.1f} MiB CSV generated in "
            f"{placement['seconds']:.1f} s, seed {record['seed']}), "
            f"pandas and ORM on the first {record['slice']:,} rows.",
            steps,
            targets,
            stages,
            f"Import: {imported['imported']:,} imported, "
            f"{imported['rejected_rows']:,} rejected, {imported['warnings']:,} "
            f"warnings, total_due {imported['total_due_imported']}; peak RSS "
            f"{imported['peak_rss_mib']:,.0f} MiB "
            f"({imported['rss_before_import_mib']:,.0f} MiB before the call).",
            "Checks: " + "; ".join(checks),
            f"Code: commit {imported['code']['commit']}, services/ and db/ sha256 "
            f"{imported['code']['services_db_sha256']}.",
            machine_line(record["machine"]),
        ]
    )


# --- Main ---------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="cases in the generated file (default %(default)s)",
    )
    parser.add_argument(
        "--slice",
        type=int,
        default=DEFAULT_SLICE,
        help="rows loaded by the pandas and ORM baselines (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of the random generator (default %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the record as JSON on stdout and the tables on stderr",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def check_upload_limit(placement: Placement) -> None:
    limit = get_settings().upload_limit_bytes
    if placement.size_bytes > limit:
        raise SystemExit(
            f"the generated file has {placement.size_bytes / 2**20:.0f} MiB, above the "
            f"upload limit of {limit // 2**20} MiB. Set RECOVA_UPLOAD_LIMIT_MB higher "
            "or use fewer --rows."
        )


def run_bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Generate the file, time the four loads and check the import."""
    slice_rows = min(args.slice, args.rows)
    load_at_start = os.getloadavg()[0]
    logger.info("generating %s rows", f"{args.rows:,}")
    placement = generate_placement(args.rows, args.seed, folder)
    check_upload_limit(placement)

    url = server_url(BENCH_DATABASE)
    recreate_database(url)
    engine = create_engine(url)
    steps = {}

    checkpoint(url)
    logger.info("raw COPY")
    steps["copy"] = time_raw_copy(url, placement.path, placement.rows)

    checkpoint(url)
    logger.info("import_cases in a child process")
    imported = run_import(placement.path)
    steps["import"] = Step(
        "Recova import_cases, whole file", placement.rows, imported["seconds"]
    )

    checkpoint(url)
    logger.info("pandas to_sql")
    steps["pandas"] = time_pandas(engine, placement.path, slice_rows)

    checkpoint(url)
    logger.info("ORM add_all")
    steps["orm"] = time_orm(engine, placement.path, slice_rows)

    problems = check_import(engine, placement, imported)
    machine = describe_machine(engine)
    engine.dispose()
    return {
        "seed": args.seed,
        "slice": slice_rows,
        "placement": {
            **asdict(placement),
            "path": placement.path.name,
            "valid_total_due": str(placement.valid_total_due),
        },
        "steps": {
            key: {**asdict(step), "rows_per_second": step.rows_per_second}
            for key, step in steps.items()
        },
        "import": imported,
        "targets": target_rows(steps, imported),
        "problems": problems,
        "machine": {**machine, "load_average_1min_at_start": round(load_at_start, 2)},
    }


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    if args.child is not None:
        return run_child(args.child)

    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="recova-bench-") as folder:
        record = run_bench(args, Path(folder))

    if args.json:
        print(render(record), file=sys.stderr)
        print(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        print(render(record))
    for problem in record["problems"]:
        logger.error("check failed: %s", problem)
    return 1 if record["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
