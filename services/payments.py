"""Payments: creditor payment files, manual posting, the unmatched queue and recovery
confirmation.

A payment file is parsed in polars, sent with COPY to a temporary staging table and
posted by a few set-based statements:

1. rows whose transaction id the creditor already has, posted or queued, are
   dropped as repeats;
2. each row is resolved in one pass. A reversal takes the case of the payment it
   names. Any other row matches a case by case number within the creditor, else
   by ID number when that debtor has exactly one open case;
3. reversals that name no posted payment, or name it wrongly, are rejected;
4. resolved rows become payments and the rest go to the unmatched queue;
5. each touched case gets its new balance, overpayment and status in one UPDATE.

Manual posting and manual matching stage one row and run the same statements, so
the balance rules live in one place. All of it runs under a transaction-level
advisory lock per creditor, and `payments` is unique on (creditor, transaction id),
so two imports of one file post each transaction once.

Balance rules: a case's position is its balance minus its overpayment. A payment
lowers the position and a reversal raises it by the original amount. The new balance
is max(position, 0) and the overpayment to refund is max(-position, 0). An open case
whose balance reaches 0 becomes `paid`, or `settled` when it has an approved
settlement. A `paid` or `settled` case whose balance rises above 0 goes back to the
status it had before the payment that closed it. Money on a `written_off` case is a
recovery: it is posted and counted, and leaves balance and overpayment unchanged.
"""

import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import polars as pl
from pydantic import BaseModel, Field
from sqlalchemy import column, insert, select, table, text
from sqlalchemy.orm import Session

from db.models import (
    OPEN_STATUSES,
    Batch,
    Case,
    CommissionBasis,
    Creditor,
    EvidenceFile,
    Payment,
    PaymentImport,
    PaymentImportFile,
    RecoveryConfirmation,
    UnmatchedPayment,
    User,
)
from recova.errors import Conflict, InvalidInput, NotFound
from recova.settings import get_settings
from services import audit
from services.actors import Actor, require_role
from services.files import FileRejected
from services.files.intake import RowIssue
from services.files.payments import ParsedPayments, parse_payments

logger = logging.getLogger(__name__)

# Posting money is finance's work alone; the other roles may read what was posted.
FINANCE_ROLES = ("finance",)
PAYMENT_READERS = ("finance", "admin", "manager", "auditor")
COPY_CHUNK_ROWS = 100_000
# Items per list kept in an import's stored report; the returned report has all.
STORED_ITEMS = 10_000
LIST_LIMIT = 500
CENT = Decimal("0.01")

Progress = Callable[[float, str], None]

STAGING_COLUMNS = {
    "row": "integer",
    "transaction_id": "text",
    "case_no": "text",
    "id_number": "text",
    "name": "text",
    "amount": "numeric(14,2)",
    "paid_on": "date",
    "channel": "text",
    "original_transaction": "text",
    "note": "text",
    # Set for a manual posting or match: the case chosen by hand, and the queue row.
    "case_id": "bigint",
    "unmatched_id": "bigint",
    "evidence": "text",
    "evidence_file_id": "bigint",
}


class PaymentImportRequest(BaseModel):
    creditor: str = Field(min_length=1, max_length=200)
    mapping: dict[str, str | None] | None = None


class ManualPayment(BaseModel):
    creditor: str = Field(min_length=1, max_length=200)
    case_no: str = Field(min_length=1, max_length=64)
    transaction_id: str = Field(min_length=1, max_length=64)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    paid_on: date
    channel: str | None = Field(default=None, max_length=50)
    evidence: str = Field(min_length=2, max_length=2000)


class UnmatchedMatch(BaseModel):
    unmatched_id: int
    case_no: str = Field(min_length=1, max_length=64)
    evidence: str = Field(min_length=2, max_length=2000)


class RecoveryConfirmationRequest(BaseModel):
    batch_id: int
    up_to: date
    statement_ref: str | None = Field(default=None, max_length=100)


@dataclass
class PostingResult:
    """Counts and lists from one run of the posting statements."""

    posted: int = 0
    recovered: Decimal = Decimal("0.00")
    repeats: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    paid_in_full: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    overpaid: dict[str, Decimal] = field(default_factory=dict)
    other_creditors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PaymentReport:
    creditor: str
    file_name: str
    data_rows: int
    import_id: int | None = None
    posted: int = 0
    recovered_total: Decimal = Decimal("0.00")
    unmatched: list[str] = field(default_factory=list)
    duplicates_skipped: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    paid_in_full: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    overpaid: dict[str, Decimal] = field(default_factory=dict)
    file_issues: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "creditor": self.creditor,
            "file": self.file_name,
            "data_rows": self.data_rows,
            "posted": self.posted,
            "recovered_total": f"{self.recovered_total:.2f}",
            "unmatched": self.unmatched,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": self.rejected,
            "paid_in_full": self.paid_in_full,
            "settled": self.settled,
            "overpaid": {
                case: f"{amount:.2f}" for case, amount in self.overpaid.items()
            },
            "file_issues": self.file_issues,
        }


# Parsing and the import itself.


def _issue(issue: RowIssue, language: str) -> dict[str, Any]:
    return _row_error(
        issue.code, language, row=issue.row, column=issue.column, value=issue.value
    )


def _row_error(
    code: str,
    language: str,
    *,
    row: int | None,
    column: str | None,
    value: Any,
    **extra: Any,
) -> dict[str, Any]:
    from recova.i18n import translate

    params = {"row": row, "column": column, "value": value, **extra}
    return {
        "row": row,
        "column": column,
        "value": value,
        "code": code,
        "message": translate(f"payments.row.{code}", language, **params),
        "fix": translate(f"payments.fix.{code}", language, **params),
    }


def _check_size(content: bytes) -> None:
    limit = get_settings().upload_limit_bytes
    if len(content) > limit:
        raise InvalidInput(
            "file_too_large",
            size_mb=round(len(content) / 2**20, 1),
            limit_mb=limit // 2**20,
        )


def _parse(
    content: bytes, filename: str, mapping: dict[str, str | None] | None
) -> ParsedPayments:
    try:
        return parse_payments(content, filename, mapping=mapping)
    except FileRejected as rejected:
        raise InvalidInput(f"file.{rejected.code}", **rejected.params) from None


def preview_payments(
    *,
    session: Session,
    actor: Actor,
    content: bytes,
    filename: str,
    mapping: dict[str, str | None] | None = None,
) -> ParsedPayments:
    """Parse a payment file without writing anything, for the page's preview."""
    require_role(actor, *FINANCE_ROLES)
    _check_size(content)
    return _parse(content, filename, mapping)


def finance_operator(name: str = "cli") -> Actor:
    """Return an operator at the command line who posts payments as finance."""
    return Actor(id=None, username=name, role="finance")


def creditor_by_name(session: Session, name: str) -> Creditor:
    creditor = session.scalar(select(Creditor).where(Creditor.name == name.strip()))
    if creditor is None:
        raise NotFound("creditor_not_found", creditor=name.strip())
    return creditor


def import_payments(
    *,
    session: Session,
    actor: Actor,
    request: PaymentImportRequest,
    content: bytes,
    filename: str,
    progress: Progress | None = None,
) -> PaymentReport:
    """Import a creditor's payment file in one transaction; see the module docstring."""
    require_role(actor, *FINANCE_ROLES)
    _check_size(content)
    report_progress = progress or (lambda fraction, stage: None)
    language = actor.language

    report_progress(0.05, "parse")
    creditor = creditor_by_name(session, request.creditor)
    parsed = _parse(content, filename, request.mapping)
    report = PaymentReport(
        creditor=creditor.name,
        file_name=PurePath(filename).name,
        data_rows=parsed.data_rows,
        rejected=[_issue(issue, language) for issue in parsed.rejected],
        file_issues=[_issue(issue, language) for issue in parsed.file_issues],
        duplicates_skipped=[
            {
                "row": repeat.row,
                "transaction": repeat.transaction_id,
                "reason": "repeated_in_file",
                "first_row": repeat.first_row,
            }
            for repeat in parsed.repeated
        ],
    )

    report_progress(0.3, "write")
    payment_import = _new_import(session, actor, creditor, content, filename)
    _create_staging(session)
    _copy_rows(session, parsed.payments, report_progress)
    report_progress(0.8, "match")
    result = _post_staged(
        session,
        actor=actor,
        creditor_id=creditor.id,
        import_id=payment_import.id,
        source="import",
    )
    _fill_report(report, result, language, _header_of(parsed, "original_transaction"))
    _finish_import(session, actor, payment_import, report)
    session.commit()
    report.import_id = payment_import.id
    report_progress(1.0, "done")
    logger.info(
        "payment import %s for creditor %s: %s posted, %s unmatched, %s repeats, "
        "%s rejected",
        payment_import.id,
        creditor.id,
        report.posted,
        len(report.unmatched),
        len(report.duplicates_skipped),
        len(report.rejected),
    )
    return report


def _header_of(parsed: ParsedPayments, field_name: str) -> str | None:
    return next(
        (header for header, mapped in parsed.mapping.items() if mapped == field_name),
        None,
    )


def _fill_report(
    report: PaymentReport,
    result: PostingResult,
    language: str,
    original_column: str | None,
) -> None:
    report.posted = result.posted
    report.recovered_total = result.recovered
    report.unmatched = result.unmatched
    report.paid_in_full = result.paid_in_full
    report.settled = result.settled
    report.overpaid = result.overpaid
    report.duplicates_skipped = sorted(
        report.duplicates_skipped + result.repeats, key=lambda item: item["row"]
    )
    db_rejected = [
        _row_error(
            item["code"],
            language,
            row=item["row"],
            column=original_column,
            value=item["original"],
            original=item["original"],
            amount=item["amount"],
        )
        for item in result.rejected
    ]
    report.rejected = sorted(report.rejected + db_rejected, key=lambda r: r["row"])
    for other in result.other_creditors:
        report.file_issues.append(
            _row_error(
                "other_creditor",
                language,
                row=None,
                column=None,
                value=None,
                creditor=other["creditor"],
                count=other["count"],
            )
        )


def _new_import(
    session: Session, actor: Actor, creditor: Creditor, content: bytes, filename: str
) -> PaymentImport:
    payment_import = PaymentImport(
        creditor_id=creditor.id,
        file_name=PurePath(filename).name[:255],
        file_sha256=hashlib.sha256(content).hexdigest(),
        file_size=len(content),
        created_by=actor.id,
    )
    session.add(payment_import)
    session.flush()
    session.add(PaymentImportFile(import_id=payment_import.id, content=content))
    session.flush()
    return payment_import


def _finish_import(
    session: Session, actor: Actor, payment_import: PaymentImport, report: PaymentReport
) -> None:
    payment_import.data_rows = report.data_rows
    payment_import.posted = report.posted
    payment_import.unmatched = len(report.unmatched)
    payment_import.duplicates = len(report.duplicates_skipped)
    payment_import.rejected = len(report.rejected)
    payment_import.recovered = report.recovered_total
    stored = report.as_json()
    for key in ("unmatched", "duplicates_skipped", "rejected", "paid_in_full"):
        stored[key] = stored[key][:STORED_ITEMS]
    payment_import.report = stored
    audit.record(
        session,
        actor,
        "payments_imported",
        "payment_import",
        payment_import.id,
        after={
            "posted": report.posted,
            "recovered": report.recovered_total,
            "unmatched": len(report.unmatched),
            "duplicates": len(report.duplicates_skipped),
            "rejected": len(report.rejected),
            "paid_in_full": len(report.paid_in_full),
        },
        detail={
            "file": report.file_name,
            "sha256": payment_import.file_sha256,
            "creditor_id": payment_import.creditor_id,
        },
    )


# The staging table and the posting statements.


def _create_staging(session: Session) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in STAGING_COLUMNS.items())
    session.execute(
        text(f"CREATE TEMP TABLE payment_staging ({columns}) ON COMMIT DROP")
    )


def _copy_rows(session: Session, frame: pl.DataFrame, progress: Progress) -> None:
    """Send the parsed rows to the staging table with COPY, in chunks for progress."""
    columns = [name for name in STAGING_COLUMNS if name in frame.columns]
    cursor = session.connection().connection.driver_connection.cursor()
    statement = f"COPY payment_staging ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    total = max(frame.height, 1)
    for offset in range(0, frame.height, COPY_CHUNK_ROWS):
        chunk = frame.slice(offset, COPY_CHUNK_ROWS).select(columns)
        buffer = io.BytesIO()
        chunk.write_csv(buffer, include_header=False, null_value="")
        with cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())
        progress(0.3 + 0.5 * min(offset + chunk.height, total) / total, "write")


def _stage_one(session: Session, values: dict[str, Any]) -> None:
    _create_staging(session)
    staging = table("payment_staging", *(column(name) for name in values))
    session.execute(insert(staging).values(values))


def _lock_creditor(session: Session, creditor_id: int) -> None:
    # Imports, manual postings and matches of one creditor run one after the other,
    # so the repeat check finds every transaction posted before it.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('recova.payments'), :creditor)"),
        {"creditor": creditor_id},
    )


def _post_staged(
    session: Session,
    *,
    actor: Actor,
    creditor_id: int,
    import_id: int | None,
    source: str,
) -> PostingResult:
    """Post the rows in `payment_staging`; the caller commits."""
    params = {
        "creditor": creditor_id,
        "import": import_id,
        "source": source,
        "actor": actor.id,
        "open_statuses": list(OPEN_STATUSES),
    }
    _lock_creditor(session, creditor_id)
    result = PostingResult()
    result.repeats = _drop_repeats(session, params)
    _resolve_rows(session, params)
    result.rejected = _reject_bad_reversals(session)
    _lock_cases(session)
    _compute_effects(session, params)
    _insert_payments(session, params)
    result.posted, result.recovered = _posted_totals(session)
    _apply_to_cases(session, params, result)
    _judge_promises(session)
    result.unmatched = _queue_unmatched(session, params)
    result.other_creditors = _other_creditors(session, params)
    return result


def _judge_promises(session: Session) -> None:
    """Judge the promises of the cases that got money, in this transaction."""
    from services.promises import evaluate_promises
    from services.segments import local_today

    case_ids = list(
        session.scalars(
            text(
                "SELECT DISTINCT target_id FROM payment_rows "
                "WHERE target_id IS NOT NULL"
            )
        )
    )
    evaluate_promises(
        session=session, as_of=local_today(), case_ids=case_ids, commit=False
    )


def _drop_repeats(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Drop rows whose transaction id the creditor has posted or queued already."""
    rows = session.execute(
        text(
            "DELETE FROM payment_staging s WHERE EXISTS (SELECT 1 FROM payments p "
            " WHERE p.creditor_id = :creditor AND p.transaction_id = s.transaction_id)"
            " OR EXISTS (SELECT 1 FROM unmatched_payments u "
            " WHERE u.creditor_id = :creditor AND u.transaction_id = s.transaction_id"
            " AND u.id IS DISTINCT FROM s.unmatched_id) "
            "RETURNING s.row, s.transaction_id"
        ),
        params,
    ).all()
    return [
        {"row": row, "transaction": transaction, "reason": "already_imported"}
        for row, transaction in sorted(rows, key=lambda item: item[0] or 0)
    ]


def _resolve_rows(session: Session, params: dict[str, Any]) -> None:
    """Build `payment_rows`: each staged row with its case, in one pass.

    A reversal takes the case of the earlier payment it names. Other rows keep a
    case chosen by hand, else match by case number, else by ID number when that
    debtor has exactly one open case. `reason` records why a row stayed unmatched.
    """
    session.execute(
        text(
            "CREATE TEMP TABLE payment_rows ON COMMIT DROP AS "
            "WITH by_id AS ("
            " SELECT d.id_number, min(c.id) AS case_id, count(*) AS open_cases"
            " FROM debtors d JOIN cases c ON c.debtor_id = d.id"
            " WHERE d.creditor_id = :creditor"
            " AND c.status = ANY(:open_statuses)"
            " AND d.id_number IN (SELECT id_number FROM payment_staging"
            "  WHERE amount > 0 AND case_id IS NULL AND id_number IS NOT NULL)"
            " GROUP BY d.id_number) "
            "SELECT s.*, "
            " CASE WHEN s.amount < 0 THEN o.case_id"
            "  ELSE coalesce(s.case_id, c.id,"
            "   CASE WHEN i.open_cases = 1 THEN i.case_id END) END AS target_id,"
            " o.id AS original_id, NULL::integer AS original_row,"
            " o.amount AS original_amount,"
            " (o.id IS NOT NULL AND EXISTS (SELECT 1 FROM payments r"
            "  WHERE r.reverses_id = o.id)) AS original_reversed,"
            " CASE WHEN s.amount > 0 AND s.case_id IS NULL AND c.id IS NULL"
            "  AND coalesce(i.open_cases, 0) <> 1 THEN"
            "  CASE WHEN i.open_cases > 1 THEN 'id_number_ambiguous'"
            "   WHEN s.case_no IS NOT NULL THEN 'case_not_found'"
            "   WHEN s.id_number IS NOT NULL THEN 'id_number_not_found'"
            "   ELSE 'no_reference' END"
            " END AS reason,"
            " coalesce(o.after_write_off, false) AS after_write_off "
            "FROM payment_staging s "
            "LEFT JOIN payments o ON s.amount < 0 AND o.creditor_id = :creditor"
            " AND o.transaction_id = s.original_transaction "
            "LEFT JOIN cases c ON s.amount > 0 AND s.case_id IS NULL"
            " AND c.creditor_id = :creditor AND c.case_no = s.case_no "
            "LEFT JOIN by_id i ON s.amount > 0 AND s.case_id IS NULL AND c.id IS NULL"
            " AND i.id_number = s.id_number"
        ),
        params,
    )
    # Reversals of payments posted by this same file take their case from them.
    session.execute(
        text(
            "UPDATE payment_rows r SET target_id = o.target_id, original_row = o.row,"
            " original_amount = o.amount "
            "FROM payment_rows o WHERE r.amount < 0 AND r.original_id IS NULL"
            " AND o.amount > 0 AND o.target_id IS NOT NULL"
            " AND o.transaction_id = r.original_transaction"
        )
    )
    session.execute(
        text(
            "UPDATE payment_rows r SET after_write_off = true "
            "FROM cases c WHERE c.id = r.target_id AND r.amount > 0"
            " AND c.status = 'written_off'"
        )
    )
    session.execute(
        text(
            "UPDATE payment_rows r SET after_write_off = o.after_write_off "
            "FROM payment_rows o WHERE r.original_row = o.row AND o.after_write_off"
        )
    )
    session.execute(text("ANALYZE payment_rows"))


def _reject_bad_reversals(session: Session) -> list[dict[str, Any]]:
    """Delete reversal rows that cannot be posted and return them with their rule."""
    rows = session.execute(
        text(
            "WITH checked AS ("
            " SELECT row, CASE"
            "  WHEN original_id IS NULL AND original_row IS NULL"
            "   THEN 'reversal_original_not_posted'"
            "  WHEN original_amount < 0 THEN 'reversal_of_reversal'"
            "  WHEN original_reversed OR row_number() OVER ("
            "   PARTITION BY original_transaction ORDER BY row) > 1"
            "   THEN 'reversal_original_already_reversed'"
            "  WHEN -amount <> original_amount THEN 'reversal_amount_mismatch'"
            "  END AS code"
            " FROM payment_rows WHERE amount < 0) "
            "DELETE FROM payment_rows r USING checked k "
            "WHERE r.row IS NOT DISTINCT FROM k.row AND k.code IS NOT NULL "
            "RETURNING r.row, k.code, r.amount, r.original_transaction"
        )
    ).all()
    return [
        {"row": row, "code": code, "amount": f"{amount:.2f}", "original": original}
        for row, code, amount, original in sorted(rows, key=lambda item: item[0] or 0)
    ]


def _lock_cases(session: Session) -> None:
    # Every case the rows touch is locked before any changes, in id order. Postings of
    # one creditor already run one at a time, and an approval locks a single case,
    # so no cycle of waits can form.
    session.execute(
        text(
            "WITH locked AS (SELECT c.id FROM cases c WHERE c.id IN"
            " (SELECT target_id FROM payment_rows WHERE target_id IS NOT NULL)"
            " ORDER BY c.id FOR UPDATE OF c) "
            "SELECT count(*) FROM locked"
        )
    )


def _insert_payments(session: Session, params: dict[str, Any]) -> None:
    """Insert the payments, then the reversals that point at them.

    Runs after `_compute_effects`, whose table names the payment that closes each
    case, so `status_before` is written with the row instead of by a later UPDATE.
    """
    common = (
        "INSERT INTO payments (creditor_id, transaction_id, case_id, amount, paid_on,"
        " channel, reverses_id, source, import_id, row_no, collector_id,"
        " after_write_off, status_before, evidence, evidence_file_id, posted_by) "
        "SELECT :creditor, r.transaction_id, r.target_id, r.amount, r.paid_on,"
        " r.channel, {reverses}, :source, :import, r.row, c.collector_id,"
        " r.after_write_off, e.old_status, r.evidence, r.evidence_file_id, :actor "
        "FROM payment_rows r JOIN cases c ON c.id = r.target_id "
        # The payment that closes a case keeps the status its reversal restores.
        "LEFT JOIN payment_effects e ON e.closed AND e.case_id = r.target_id"
        " AND e.last_transaction = r.transaction_id "
    )
    session.execute(
        text(common.format(reverses="NULL") + "WHERE r.amount > 0 ORDER BY r.row"),
        params,
    )
    session.execute(
        text(
            "UPDATE payment_rows r SET original_id = p.id FROM payments p "
            "WHERE r.original_row IS NOT NULL AND p.creditor_id = :creditor"
            " AND p.transaction_id = r.original_transaction"
        ),
        params,
    )
    session.execute(
        text(
            common.format(reverses="r.original_id")
            + "WHERE r.amount < 0 ORDER BY r.row"
        ),
        params,
    )


def _posted_totals(session: Session) -> tuple[int, Decimal]:
    count, total = session.execute(
        text(
            "SELECT count(*), coalesce(sum(amount), 0) FROM payment_rows "
            "WHERE target_id IS NOT NULL"
        )
    ).one()
    return int(count), Decimal(total).quantize(CENT)


def _apply_to_cases(
    session: Session, params: dict[str, Any], result: PostingResult
) -> None:
    """Move balances, overpayments and statuses of the cases the rows touched."""
    session.execute(
        text(
            "UPDATE cases c SET balance = e.new_balance, status = e.new_status,"
            " version = c.version + 1, updated_at = now(), updated_by = :actor "
            "FROM payment_effects e WHERE c.id = e.case_id"
            " AND (c.balance <> e.new_balance OR c.status <> e.new_status)"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO overpayments (case_id, amount, updated_at) "
            "SELECT case_id, new_over, now() FROM payment_effects "
            "WHERE new_over <> old_over "
            "ON CONFLICT (case_id) DO UPDATE SET amount = excluded.amount,"
            " updated_at = excluded.updated_at"
        )
    )
    closed = session.execute(
        text(
            "SELECT case_no, new_status FROM payment_effects WHERE closed "
            "ORDER BY case_no"
        )
    ).all()
    result.paid_in_full = [case_no for case_no, status in closed if status == "paid"]
    result.settled = [case_no for case_no, status in closed if status == "settled"]
    overpaid = session.execute(
        text(
            "SELECT case_no, new_over FROM payment_effects "
            "WHERE new_over > 0 AND new_over <> old_over ORDER BY case_no"
        )
    ).all()
    result.overpaid = {case_no: Decimal(amount) for case_no, amount in overpaid}


def _compute_effects(session: Session, params: dict[str, Any]) -> None:
    """Build `payment_effects`: old and new balance, overpayment and status per case."""
    session.execute(
        text(
            "CREATE TEMP TABLE payment_effects ON COMMIT DROP AS "
            "WITH net AS ("
            " SELECT target_id AS case_id, sum(amount) AS net,"
            "  (array_agg(transaction_id ORDER BY row DESC)"
            "   FILTER (WHERE amount > 0))[1] AS last_transaction"
            " FROM payment_rows WHERE target_id IS NOT NULL AND NOT after_write_off"
            " GROUP BY target_id), "
            "moved AS ("
            " SELECT c.id AS case_id, c.case_no, c.status AS old_status,"
            "  coalesce(o.amount, 0) AS old_over, net.last_transaction,"
            "  c.balance - coalesce(o.amount, 0) - net.net AS position,"
            "  EXISTS (SELECT 1 FROM approval_requests a WHERE a.case_id = c.id"
            "   AND a.kind = 'settlement' AND a.status = 'approved') AS agreed"
            " FROM net JOIN cases c ON c.id = net.case_id"
            " LEFT JOIN overpayments o ON o.case_id = c.id) "
            "SELECT case_id, case_no, old_status, old_over, last_transaction,"
            " greatest(position, 0) AS new_balance,"
            " greatest(-position, 0) AS new_over,"
            " CASE"
            "  WHEN position <= 0 AND old_status = ANY(:open_statuses)"
            "   THEN CASE WHEN agreed THEN 'settled' ELSE 'paid' END"
            "  WHEN position > 0 AND old_status IN ('paid', 'settled')"
            "   THEN coalesce((SELECT p.status_before FROM payments p"
            "    WHERE p.case_id = moved.case_id AND p.status_before IS NOT NULL"
            "    ORDER BY p.id DESC LIMIT 1), 'in_progress')"
            "  ELSE old_status END AS new_status,"
            " (position <= 0 AND old_status = ANY(:open_statuses)) AS closed "
            "FROM moved"
        ),
        params,
    )


def _queue_unmatched(session: Session, params: dict[str, Any]) -> list[str]:
    rows = session.execute(
        text(
            "INSERT INTO unmatched_payments (creditor_id, transaction_id, import_id,"
            " row_no, case_no, id_number, name, amount, paid_on, channel, reason) "
            "SELECT :creditor, transaction_id, :import, row, left(case_no, 64),"
            " left(id_number, 32), left(name, 200), amount, paid_on,"
            " left(channel, 50), reason "
            "FROM payment_rows WHERE target_id IS NULL AND amount > 0 ORDER BY row "
            "RETURNING row_no, transaction_id"
        ),
        params,
    ).all()
    return [transaction for _, transaction in sorted(rows, key=lambda r: r[0] or 0)]


def _other_creditors(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Name other creditors whose case numbers the unmatched rows carry.

    A file sent under the wrong creditor shows up here instead of as a long list of
    unknown case numbers.
    """
    rows = session.execute(
        text(
            "SELECT cr.name, count(DISTINCT r.row) FROM payment_rows r"
            " JOIN cases c ON c.case_no = r.case_no AND c.creditor_id <> :creditor"
            " JOIN creditors cr ON cr.id = c.creditor_id "
            "WHERE r.target_id IS NULL AND r.reason = 'case_not_found' "
            "GROUP BY cr.name ORDER BY count(DISTINCT r.row) DESC, cr.name"
        ),
        params,
    ).all()
    return [{"creditor": name, "count": count} for name, count in rows]


# Manual posting and the unmatched queue.


def store_evidence(
    session: Session, actor: Actor, file_name: str, content: bytes
) -> EvidenceFile:
    """Keep an uploaded evidence file and return its row (flushed, not committed)."""
    _check_size(content)
    evidence = EvidenceFile(
        file_name=PurePath(file_name).name[:255] or "evidence",
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by=actor.id,
    )
    session.add(evidence)
    session.flush()
    return evidence


def _case_by_number(session: Session, creditor: Creditor, case_no: str) -> Case:
    case = session.scalar(
        select(Case).where(
            Case.creditor_id == creditor.id, Case.case_no == case_no.strip()
        )
    )
    if case is None:
        raise NotFound(
            "case_no_not_found", case_no=case_no.strip(), creditor=creditor.name
        )
    return case


def _case_state(session: Session, case_id: int) -> dict[str, Any]:
    row = session.execute(
        text(
            "SELECT c.balance, c.status, coalesce(o.amount, 0) AS overpayment "
            "FROM cases c LEFT JOIN overpayments o ON o.case_id = c.id "
            "WHERE c.id = :case"
        ),
        {"case": case_id},
    ).one()
    return dict(row._mapping)


def post_payment(
    *,
    session: Session,
    actor: Actor,
    data: ManualPayment,
    evidence_file: tuple[str, bytes] | None = None,
) -> Payment:
    """Post one payment by hand, with evidence, to a case named by its number."""
    from services.segments import local_today

    require_role(actor, *FINANCE_ROLES)
    if data.paid_on > local_today():
        raise InvalidInput("paid_on_in_future", paid_on=data.paid_on.isoformat())
    creditor = creditor_by_name(session, data.creditor)
    case = _case_by_number(session, creditor, data.case_no)
    stored = store_evidence(session, actor, *evidence_file) if evidence_file else None
    before = _case_state(session, case.id)

    _stage_one(
        session,
        {
            "row": None,
            "transaction_id": data.transaction_id.strip(),
            "case_no": case.case_no,
            "amount": data.amount,
            "paid_on": data.paid_on,
            "channel": (data.channel or "").strip() or None,
            "case_id": case.id,
            "evidence": data.evidence.strip(),
            "evidence_file_id": stored.id if stored else None,
        },
    )
    result = _post_staged(
        session, actor=actor, creditor_id=creditor.id, import_id=None, source="manual"
    )
    if result.repeats:
        session.rollback()
        raise Conflict(
            "transaction_exists",
            transaction=data.transaction_id.strip(),
            creditor=creditor.name,
        )

    payment = _payment_by_transaction(session, creditor.id, data.transaction_id)
    audit.record(
        session,
        actor,
        "payment_posted",
        "payment",
        payment.id,
        before=before,
        after=_case_state(session, case.id),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "transaction_id": payment.transaction_id,
            "amount": payment.amount,
            "evidence": payment.evidence,
            "evidence_file_id": payment.evidence_file_id,
        },
    )
    session.commit()
    logger.info("payment %s posted by hand to case %s", payment.id, case.id)
    return payment


def _payment_by_transaction(
    session: Session, creditor_id: int, transaction_id: str
) -> Payment:
    payment = session.scalar(
        select(Payment).where(
            Payment.creditor_id == creditor_id,
            Payment.transaction_id == transaction_id.strip(),
        )
    )
    if payment is None:
        raise NotFound("payment_not_found", transaction=transaction_id)
    return payment


def list_unmatched(
    *,
    session: Session,
    actor: Actor,
    creditor_id: int | None = None,
    include_matched: bool = False,
) -> list[dict[str, Any]]:
    """Return the unmatched queue, oldest first, at most 500 rows."""
    require_role(actor, *PAYMENT_READERS)
    query = (
        select(UnmatchedPayment, Creditor.name)
        .join(Creditor, Creditor.id == UnmatchedPayment.creditor_id)
        .order_by(UnmatchedPayment.created_at, UnmatchedPayment.id)
        .limit(LIST_LIMIT)
    )
    if creditor_id is not None:
        query = query.where(UnmatchedPayment.creditor_id == creditor_id)
    if not include_matched:
        query = query.where(UnmatchedPayment.status == "open")
    return [
        {
            "id": row.id,
            "creditor": creditor,
            "transaction_id": row.transaction_id,
            "row": row.row_no,
            "case_no": row.case_no,
            "id_number": row.id_number,
            "name": row.name,
            "amount": row.amount,
            "paid_on": row.paid_on,
            "channel": row.channel,
            "reason": row.reason,
            "status": row.status,
        }
        for row, creditor in session.execute(query)
    ]


def match_unmatched(*, session: Session, actor: Actor, data: UnmatchedMatch) -> Payment:
    """Post a queued payment to the case finance chose, and close its queue entry."""
    require_role(actor, *FINANCE_ROLES)
    queued = session.scalar(
        select(UnmatchedPayment)
        .where(UnmatchedPayment.id == data.unmatched_id)
        .with_for_update()
    )
    if queued is None:
        raise NotFound("unmatched_not_found", unmatched_id=data.unmatched_id)
    if queued.status != "open":
        raise Conflict("unmatched_already_matched", transaction=queued.transaction_id)
    creditor = session.get(Creditor, queued.creditor_id)
    case = _case_by_number(session, creditor, data.case_no)
    before = _case_state(session, case.id)

    _stage_one(
        session,
        {
            "row": queued.row_no,
            "transaction_id": queued.transaction_id,
            "case_no": case.case_no,
            "amount": queued.amount,
            "paid_on": queued.paid_on,
            "channel": queued.channel,
            "case_id": case.id,
            "unmatched_id": queued.id,
            "evidence": data.evidence.strip(),
        },
    )
    result = _post_staged(
        session,
        actor=actor,
        creditor_id=creditor.id,
        import_id=queued.import_id,
        source="matched",
    )
    if result.repeats:
        session.rollback()
        raise Conflict(
            "transaction_exists",
            transaction=queued.transaction_id,
            creditor=creditor.name,
        )

    payment = _payment_by_transaction(session, creditor.id, queued.transaction_id)
    queued.status = "matched"
    queued.payment_id = payment.id
    queued.resolved_by = actor.id
    queued.resolved_at = session.scalar(text("SELECT now()"))
    audit.record(
        session,
        actor,
        "payment_matched",
        "payment",
        payment.id,
        before=before,
        after=_case_state(session, case.id),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "unmatched_id": queued.id,
            "transaction_id": queued.transaction_id,
            "amount": queued.amount,
            "reason_unmatched": queued.reason,
            "evidence": data.evidence.strip(),
        },
    )
    session.commit()
    logger.info("unmatched payment %s matched to case %s", queued.id, case.id)
    return payment


# Reading payments.


def list_case_payments(
    *, session: Session, actor: Actor, case_id: int
) -> list[dict[str, Any]]:
    """Return a case's payments, newest first, to a user who may read the case."""
    from services.cases import get_case

    get_case(session=session, actor=actor, case_id=case_id)
    return case_payment_rows(session=session, case_id=case_id)


def case_payment_rows(*, session: Session, case_id: int) -> list[dict[str, Any]]:
    """Return a case's payments, newest first; the caller has checked access."""
    rows = session.execute(
        text(
            "SELECT p.id, p.transaction_id, p.amount, p.paid_on, p.channel,"
            " p.source, p.after_write_off, o.transaction_id AS reverses,"
            " p.posted_at, u.username AS posted_by, p.evidence "
            "FROM payments p LEFT JOIN payments o ON o.id = p.reverses_id"
            " LEFT JOIN users u ON u.id = p.posted_by "
            "WHERE p.case_id = :case ORDER BY p.paid_on DESC, p.id DESC"
        ),
        {"case": case_id},
    ).mappings()
    return [dict(row) for row in rows]


def list_imports(
    *, session: Session, actor: Actor, limit: int = 50
) -> list[dict[str, Any]]:
    require_role(actor, *PAYMENT_READERS)
    rows = session.execute(
        select(PaymentImport, Creditor.name, User.username)
        .join(Creditor, Creditor.id == PaymentImport.creditor_id)
        .outerjoin(User, User.id == PaymentImport.created_by)
        .order_by(PaymentImport.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": item.id,
            "creditor": creditor,
            "file": item.file_name,
            "posted": item.posted,
            "unmatched": item.unmatched,
            "duplicates": item.duplicates,
            "rejected": item.rejected,
            "recovered": item.recovered,
            "by": username,
            "at": item.created_at,
        }
        for item, creditor, username in rows
    ]


def import_file(*, session: Session, actor: Actor, import_id: int) -> tuple[str, bytes]:
    """Return the original file of a payment import, byte for byte."""
    require_role(actor, *PAYMENT_READERS)
    item = session.get(PaymentImport, import_id)
    stored = session.get(PaymentImportFile, import_id)
    if item is None or stored is None:
        raise NotFound("payment_import_not_found", import_id=import_id)
    return item.file_name, stored.content


# Recovery confirmation.


@dataclass
class RecoverySummary:
    batch_id: int
    batch: str
    creditor: str
    up_to: date
    commission_rate: Decimal | None
    payment_count: int
    recovered: Decimal
    commission: Decimal | None
    lines: list[dict[str, Any]]


def _commission(amount: Decimal, rate: Decimal | None) -> Decimal | None:
    if rate is None:
        return None
    return (amount * rate).quantize(CENT)


def recovery_summary(
    *, session: Session, actor: Actor, batch_id: int, up_to: date
) -> RecoverySummary:
    """Total the batch's unconfirmed payments up to `up_to`, per collector."""
    require_role(actor, *PAYMENT_READERS)
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound("batch_not_found", batch_id=batch_id)
    rows = session.execute(
        text(
            "SELECT p.collector_id, u.username, count(*) AS payments,"
            " sum(p.amount) AS recovered "
            "FROM payments p JOIN cases c ON c.id = p.case_id"
            " LEFT JOIN users u ON u.id = p.collector_id "
            "WHERE c.batch_id = :batch AND p.confirmation_id IS NULL"
            " AND p.paid_on <= :up_to "
            "GROUP BY p.collector_id, u.username ORDER BY u.username NULLS LAST"
        ),
        {"batch": batch_id, "up_to": up_to},
    ).mappings()
    rate = batch.commission_rate
    lines = [
        {
            "collector_id": row["collector_id"],
            "collector": row["username"],
            "payments": int(row["payments"]),
            "recovered": Decimal(row["recovered"]).quantize(CENT),
            "commission": _commission(Decimal(row["recovered"]), rate),
        }
        for row in rows
    ]
    recovered = sum((line["recovered"] for line in lines), Decimal("0.00"))
    return RecoverySummary(
        batch_id=batch.id,
        batch=batch.name,
        creditor=batch.creditor.name,
        up_to=up_to,
        commission_rate=rate,
        payment_count=sum(line["payments"] for line in lines),
        recovered=recovered,
        commission=_commission(recovered, rate),
        lines=lines,
    )


def confirm_recoveries(
    *, session: Session, actor: Actor, data: RecoveryConfirmationRequest
) -> RecoveryConfirmation:
    """Confirm a batch's unconfirmed payments up to a date and record commissions.

    Each payment is confirmed once: the payments are claimed by one UPDATE, so a
    second confirmation running at the same time finds none and is rejected.
    """
    require_role(actor, *FINANCE_ROLES)
    batch = session.get(Batch, data.batch_id)
    if batch is None:
        raise NotFound("batch_not_found", batch_id=data.batch_id)
    confirmation = RecoveryConfirmation(
        creditor_id=batch.creditor_id,
        batch_id=batch.id,
        up_to=data.up_to,
        statement_ref=(data.statement_ref or "").strip() or None,
        payment_count=0,
        recovered=Decimal("0.00"),
        commission_rate=batch.commission_rate,
        confirmed_by=actor.id,
    )
    session.add(confirmation)
    session.flush()

    claimed = session.execute(
        text(
            "UPDATE payments p SET confirmation_id = :confirmation FROM cases c "
            "WHERE c.id = p.case_id AND c.batch_id = :batch"
            " AND p.confirmation_id IS NULL AND p.paid_on <= :up_to"
        ),
        {"confirmation": confirmation.id, "batch": batch.id, "up_to": data.up_to},
    ).rowcount
    if not claimed:
        session.rollback()
        raise InvalidInput(
            "nothing_to_confirm", batch=batch.name, up_to=data.up_to.isoformat()
        )

    _record_commission_bases(session, confirmation)
    audit.record(
        session,
        actor,
        "recoveries_confirmed",
        "recovery_confirmation",
        confirmation.id,
        after={
            "batch_id": batch.id,
            "up_to": data.up_to,
            "payments": confirmation.payment_count,
            "recovered": confirmation.recovered,
            "commission_rate": confirmation.commission_rate,
            "commission": confirmation.commission,
        },
        detail={"statement_ref": confirmation.statement_ref},
    )
    session.commit()
    return confirmation


def _record_commission_bases(
    session: Session, confirmation: RecoveryConfirmation
) -> None:
    rate = confirmation.commission_rate
    rows = session.execute(
        text(
            "SELECT collector_id, count(*), sum(amount) FROM payments "
            "WHERE confirmation_id = :confirmation GROUP BY collector_id"
        ),
        {"confirmation": confirmation.id},
    ).all()
    for collector_id, count, recovered in rows:
        session.add(
            CommissionBasis(
                confirmation_id=confirmation.id,
                collector_id=collector_id,
                payment_count=int(count),
                recovered=Decimal(recovered),
                commission=_commission(Decimal(recovered), rate),
            )
        )
    confirmation.payment_count = sum(int(count) for _, count, _ in rows)
    confirmation.recovered = sum((Decimal(total) for *_, total in rows), Decimal(0))
    confirmation.commission = _commission(confirmation.recovered, rate)
    session.flush()


def list_confirmations(
    *, session: Session, actor: Actor, batch_id: int | None = None
) -> list[dict[str, Any]]:
    require_role(actor, *PAYMENT_READERS)
    query = (
        select(RecoveryConfirmation, Batch.name, User.username)
        .join(Batch, Batch.id == RecoveryConfirmation.batch_id)
        .outerjoin(User, User.id == RecoveryConfirmation.confirmed_by)
        .order_by(RecoveryConfirmation.id.desc())
        .limit(LIST_LIMIT)
    )
    if batch_id is not None:
        query = query.where(RecoveryConfirmation.batch_id == batch_id)
    return [
        {
            "id": item.id,
            "batch": batch,
            "up_to": item.up_to,
            "statement_ref": item.statement_ref,
            "payments": item.payment_count,
            "recovered": item.recovered,
            "commission_rate": item.commission_rate,
            "commission": item.commission,
            "by": username,
            "at": item.confirmed_at,
        }
        for item, batch, username in session.execute(query)
    ]


def report_workbook(report: PaymentReport, language: str) -> bytes:
    """Return the import report as an .xlsx workbook in `language`."""
    from recova.i18n import translate
    from services.files.export import write_xlsx

    def label(key: str) -> str:
        return translate(f"payments.report.{key}", language)

    summary = pl.DataFrame(
        {
            label("item"): [
                label("creditor"),
                label("file"),
                label("import_id"),
                label("data_rows"),
                label("posted"),
                label("recovered"),
                label("unmatched"),
                label("duplicates"),
                label("rejected"),
                label("paid_in_full"),
                label("overpaid"),
            ],
            label("value"): [
                report.creditor,
                report.file_name,
                str(report.import_id or ""),
                str(report.data_rows),
                str(report.posted),
                f"{report.recovered_total:.2f}",
                str(len(report.unmatched)),
                str(len(report.duplicates_skipped)),
                str(len(report.rejected)),
                str(len(report.paid_in_full)),
                str(len(report.overpaid)),
            ],
        }
    )
    issue_columns = ["row", "column", "value", "code", "message", "fix"]
    rejected = pl.DataFrame(
        [
            {key: str(item.get(key) or "") for key in issue_columns}
            for item in report.file_issues + report.rejected
        ],
        schema={key: pl.Utf8 for key in issue_columns},
    ).rename({key: label(key) for key in issue_columns})
    duplicates = pl.DataFrame(
        {
            label("row"): [item["row"] for item in report.duplicates_skipped],
            label("transaction"): [
                item["transaction"] for item in report.duplicates_skipped
            ],
            label("reason"): [
                translate(f"payments.repeat.{item['reason']}", language)
                for item in report.duplicates_skipped
            ],
        },
        schema={
            label("row"): pl.Int64,
            label("transaction"): pl.Utf8,
            label("reason"): pl.Utf8,
        },
    )
    overpaid = pl.DataFrame(
        {
            label("case_no"): list(report.overpaid),
            label("amount"): list(report.overpaid.values()),
        },
        schema={label("case_no"): pl.Utf8, label("amount"): pl.Decimal(14, 2)},
    )
    sheets = {
        label("summary"): summary,
        label("rejected"): rejected,
        label("duplicates"): duplicates,
        label("unmatched"): pl.DataFrame(
            {label("transaction"): report.unmatched},
            schema={label("transaction"): pl.Utf8},
        ),
        label("paid_in_full"): pl.DataFrame(
            {label("case_no"): report.paid_in_full},
            schema={label("case_no"): pl.Utf8},
        ),
        label("overpaid"): overpaid,
    }
    return write_xlsx(sheets)
