"""Models of the daily case history and the KPI aggregates read by the KPI page.

`case_snapshots` is a history table: one row per case and stretch of days in which
its bucket, balance, status, collector, team, segment and risk grade stayed the
same (`valid_from` inclusive, `valid_to` exclusive, null while current). The
`kpi_*` tables are daily sums per dimension value, refilled by the daily job.
"""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

# Sums over millions of cases pass NUMERIC(14,2)'s 12 integer digits.
TOTAL = Numeric(18, 2)
# Dimensions that the KPI aggregates are kept by; `all` has the single key "all".
KPI_DIMENSIONS = (
    "all",
    "creditor",
    "batch",
    "product",
    "province",
    "bucket",
    "segment",
    "grade",
    "team",
    "collector",
)


class CaseSnapshot(Base):
    """A case's bucket, balance, status and owner over a stretch of days."""

    __tablename__ = "case_snapshots"
    __table_args__ = (
        Index(None, "case_id", "valid_from", unique=True),
        # One current row per case.
        Index(
            "ux_case_snapshots_current",
            "case_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index(None, "valid_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    # Null for a case not past due yet and for a closed case.
    bucket: Mapped[str | None] = mapped_column(String(4))
    balance: Mapped[Decimal]
    collector_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(32))
    risk_grade: Mapped[str | None] = mapped_column(String(1))


class SnapshotDay(Base):
    """A day whose snapshot was taken, with the number of rows it wrote."""

    __tablename__ = "snapshot_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    cases: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(server_default=func.now())


class KpiRefresh(Base):
    """One run of the KPI aggregation: which days it rewrote, and when."""

    __tablename__ = "kpi_refreshes"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    refreshed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class KpiDaily(Base):
    """Event sums of one day for one dimension value (attempts, money, promises)."""

    __tablename__ = "kpi_daily"

    dim: Mapped[str] = mapped_column(String(12), primary_key=True)
    # '' for the whole portfolio, or 'collector:ID' / 'team:ID' for one owner's sums.
    scope: Mapped[str] = mapped_column(String(24), primary_key=True, default="")
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    connected: Mapped[int] = mapped_column(Integer)
    rpc: Mapped[int] = mapped_column(Integer)
    promises: Mapped[int] = mapped_column(Integer)
    promised_amount: Mapped[Decimal] = mapped_column(TOTAL)
    promises_due: Mapped[int] = mapped_column(Integer)
    promises_due_amount: Mapped[Decimal] = mapped_column(TOTAL)
    promises_kept: Mapped[int] = mapped_column(Integer)
    promises_kept_amount: Mapped[Decimal] = mapped_column(TOTAL)
    recovered: Mapped[Decimal] = mapped_column(TOTAL)
    payments: Mapped[int] = mapped_column(Integer)
    closed_cases: Mapped[int] = mapped_column(Integer)
    cycle_days: Mapped[int] = mapped_column(BigInteger)
    assigned_cases: Mapped[int] = mapped_column(Integer)
    sla_met: Mapped[int] = mapped_column(Integer)
    # Collectors who recorded at least one attempt that day: their working days.
    collector_days: Mapped[int] = mapped_column(Integer)
    # Cases whose first payment that was not reversed is on this day.
    paying_cases: Mapped[int] = mapped_column(Integer)


class KpiPopulation(Base):
    """The cases placed by a day for one dimension value, and their amounts."""

    __tablename__ = "kpi_population"

    dim: Mapped[str] = mapped_column(String(12), primary_key=True)
    # '' for the whole portfolio, or 'collector:ID' / 'team:ID' for one owner's sums.
    scope: Mapped[str] = mapped_column(String(24), primary_key=True, default="")
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    cases: Mapped[int] = mapped_column(Integer)
    open_cases: Mapped[int] = mapped_column(Integer)
    total_due: Mapped[Decimal] = mapped_column(TOTAL)
    balance: Mapped[Decimal] = mapped_column(TOTAL)


class KpiRoll(Base):
    """Balance that started a calendar month in one bucket and ended it in a state.

    `to_state` is a bucket, `current`, or a closed status (paid, settled,
    written_off, recalled).
    """

    __tablename__ = "kpi_roll"

    dim: Mapped[str] = mapped_column(String(12), primary_key=True)
    scope: Mapped[str] = mapped_column(String(24), primary_key=True, default="")
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    from_bucket: Mapped[str] = mapped_column(String(4), primary_key=True)
    to_state: Mapped[str] = mapped_column(String(16), primary_key=True)
    cases: Mapped[int] = mapped_column(Integer)
    balance: Mapped[Decimal] = mapped_column(TOTAL)
