"""Reports for creditors: the monthly statement of one placement batch."""

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from recova.errors import NotFound
from recova.i18n import translate
from services.actors import Actor, require_role
from services.files.export import write_xlsx

REPORT_READERS = ("admin", "manager", "finance", "auditor")
CENT = Decimal("0.01")


@dataclass
class Statement:
    """A batch's statement for one month: a summary row and one row per case."""

    summary: pl.DataFrame
    cases: pl.DataFrame


def creditor_statement(
    *, session: Session, actor: Actor, batch_id: int, month: date
) -> Statement:
    """Build the statement of `batch_id` for the calendar month containing `month`.

    Amounts recovered are net of reversals and dated in the month; the commission
    is that amount times the batch's commission rate, rounded half up to cents.
    """
    require_role(actor, *REPORT_READERS)
    batch = session.execute(
        text(
            "SELECT b.id, b.name, b.commission_rate, cr.name AS creditor "
            "FROM batches b JOIN creditors cr ON cr.id = b.creditor_id "
            "WHERE b.id = :id"
        ),
        {"id": batch_id},
    ).one_or_none()
    if batch is None:
        raise NotFound("report_batch_not_found", batch=batch_id)
    first = month.replace(day=1)
    last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    rows = session.execute(
        text(
            """
            SELECT c.case_no, d.name AS debtor, c.total_due, c.balance, c.status,
                coalesce(sum(p.amount) FILTER (
                    WHERE p.paid_on BETWEEN :first AND :last), 0) AS recovered_month,
                coalesce(sum(p.amount) FILTER (WHERE p.paid_on <= :last), 0)
                    AS recovered_to_date,
                count(p.id) FILTER (
                    WHERE p.paid_on BETWEEN :first AND :last AND p.amount > 0)
                    AS payments
            FROM cases c JOIN debtors d ON d.id = c.debtor_id
            LEFT JOIN payments p ON p.case_id = c.id
            WHERE c.batch_id = :batch
            GROUP BY c.id, d.name ORDER BY c.case_no
            """
        ),
        {"batch": batch_id, "first": first, "last": last},
    ).mappings()
    language = actor.language
    cases = pl.DataFrame(
        [dict(row) for row in rows],
        schema={
            "case_no": pl.Utf8,
            "debtor": pl.Utf8,
            "total_due": pl.Decimal(14, 2),
            "balance": pl.Decimal(14, 2),
            "status": pl.Utf8,
            "recovered_month": pl.Decimal(14, 2),
            "recovered_to_date": pl.Decimal(14, 2),
            "payments": pl.Int64,
        },
    )
    recovered = Decimal(str(cases["recovered_month"].sum() or 0)).quantize(CENT)
    rate = batch.commission_rate
    commission = (recovered * rate).quantize(CENT, ROUND_HALF_UP) if rate else None
    summary = pl.DataFrame(
        {
            "creditor": [batch.creditor],
            "batch": [batch.name],
            "month": [first.strftime("%Y-%m")],
            "cases": [cases.height],
            "total_due": [Decimal(str(cases["total_due"].sum() or 0))],
            "recovered_month": [recovered],
            "commission_rate": [rate],
            "commission": [commission],
        },
        schema={
            "creditor": pl.Utf8,
            "batch": pl.Utf8,
            "month": pl.Utf8,
            "cases": pl.Int64,
            "total_due": pl.Decimal(18, 2),
            "recovered_month": pl.Decimal(18, 2),
            "commission_rate": pl.Decimal(6, 4),
            "commission": pl.Decimal(18, 2),
        },
    )
    statuses = {
        status: translate(f"status.{status}", language)
        for status in cases["status"].unique().to_list()
    }
    cases = cases.with_columns(pl.col("status").replace_strict(statuses))
    return Statement(summary=summary, cases=cases)


def statement_workbook(statement: Statement, language: str) -> bytes:
    """Write the statement as an xlsx file with translated column headers."""

    def labelled(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.rename(
            {
                name: translate(f"report.column.{name}", language)
                for name in frame.columns
            }
        )

    return write_xlsx(
        {
            translate("report.statement.summary", language): labelled(
                statement.summary
            ),
            translate("report.statement.cases", language): labelled(statement.cases),
        }
    )
