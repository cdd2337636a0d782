"""Case intake: a creditor's placement file becomes one batch of cases.

The file is parsed and checked in polars, written with COPY into a temporary staging
table, and moved into debtors, contacts and cases with a few INSERT ... SELECT
statements. The whole batch is one transaction, so a crash or a cancelled upload
leaves nothing behind.
"""

import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Batch, BatchFile, Creditor
from recova.errors import InvalidInput, NotFound
from recova.settings import get_settings
from services import audit
from services.actors import Actor, require_role
from services.files import FileRejected
from services.files.headers import normalise_header
from services.files.intake import (
    ParsedCases,
    RowIssue,
    first_row_texts,
    parse_cases,
)
from services.masking import mask_field

logger = logging.getLogger(__name__)

IMPORT_ROLES = ("admin", "manager")
COPY_CHUNK_ROWS = 100_000
# Issues kept in the batch's stored report; the report returned by the import has all.
STORED_ISSUES = 10_000

Progress = Callable[[float, str], None]

STAGING_COLUMNS = {
    "row": "integer",
    "case_no": "text",
    "name": "text",
    "id_number": "text",
    "phone": "text",
    "email": "text",
    "address": "text",
    "province": "text",
    "city": "text",
    "customer_type": "text",
    "product": "text",
    "contract_no": "text",
    "principal": "numeric(14,2)",
    "interest": "numeric(14,2)",
    "fees": "numeric(14,2)",
    "total_due": "numeric(14,2)",
    "dpd_at_placement": "integer",
    "overdue_since": "date",
    "placement_date": "date",
    "recall_date": "date",
    "contact_name": "text",
    "contact_relation": "text",
    "contact_phone": "text",
    "note": "text",
    "extra": "jsonb",
}


class ImportRequest(BaseModel):
    creditor: str = Field(min_length=1, max_length=200)
    batch_name: str | None = Field(default=None, max_length=200)
    placement_date: date | None = None
    recall_date: date | None = None
    mode: Literal["valid-rows", "all-or-nothing"] = "valid-rows"
    mapping: dict[str, str | None] | None = None
    save_mapping: bool = False
    # Day-first ("dmy") or month-first ("mdy") for date columns the file leaves open.
    date_orders: dict[str, Literal["dmy", "mdy"]] | None = None


@dataclass
class ImportReport:
    creditor: str
    file_name: str
    data_rows: int
    batch_id: int | None = None
    batch_name: str | None = None
    imported: int = 0
    total_due_imported: Decimal = Decimal("0.00")
    skipped_existing: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    file_issues: list[dict[str, Any]] = field(default_factory=list)
    refused: bool = False
    refusal: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "creditor": self.creditor,
            "file": self.file_name,
            "data_rows": self.data_rows,
            "imported": self.imported,
            "total_due_imported": f"{self.total_due_imported:.2f}",
            "skipped_existing": self.skipped_existing,
            "rejected": self.rejected,
            "warnings": self.warnings,
            "file_issues": self.file_issues,
            "refused": self.refused,
            "refusal": self.refusal,
        }


@dataclass
class Preview:
    """A parsed file, or its first row to map by hand when no header was recognised."""

    parsed: ParsedCases | None
    saved_mapping_used: bool
    unrecognised_headers: list[str] = field(default_factory=list)


def _issue_dict(issue: RowIssue, actor: Actor, language: str) -> dict[str, Any]:
    value = issue.value
    if actor.sees_masked_pii:
        value = mask_field(issue.field, value)
    params = {
        key: item if isinstance(item, int | str | float | None) else str(item)
        for key, item in issue.params.items()
    }
    params.update(row=issue.row, column=issue.column, value=value)
    return {
        "row": issue.row,
        "column": issue.column,
        "field": issue.field,
        "value": value,
        "code": issue.code,
        **describe_issue(issue.code, params, language),
        "params": params,
    }


def describe_issue(code: str, params: dict[str, Any], language: str) -> dict[str, str]:
    """Return the message and the fix of a row issue in `language`."""
    from recova.i18n import translate

    return {
        "message": translate(f"intake.{code}", language, **params),
        "fix": translate(f"intake.fix.{code}", language, **params),
    }


def localise_issues(
    issues: list[dict[str, Any]], language: str
) -> list[dict[str, Any]]:
    """Return copies of report issues with message and fix in `language`."""
    return [
        {**issue, **describe_issue(issue["code"], issue.get("params", {}), language)}
        for issue in issues
    ]


def _check_size(content: bytes) -> None:
    limit = get_settings().upload_limit_bytes
    if len(content) > limit:
        raise InvalidInput(
            "file_too_large",
            size_mb=round(len(content) / 2**20, 1),
            limit_mb=limit // 2**20,
        )


def _saved_mapping(session: Session, creditor_name: str) -> dict[str, str | None]:
    saved = session.scalar(
        select(Creditor.header_mapping).where(Creditor.name == creditor_name)
    )
    return dict(saved or {})


def _parse(
    content: bytes,
    filename: str,
    *,
    mapping: dict[str, str | None] | None,
    saved: dict[str, str | None],
    placement_date: date | None,
    date_orders: dict[str, str] | None = None,
) -> tuple[ParsedCases, bool]:
    """Parse with the user's mapping, else the creditor's saved one where it applies."""

    def parse(chosen: dict[str, str | None] | None) -> ParsedCases:
        return parse_cases(
            content,
            filename,
            mapping=chosen,
            placement_date=placement_date,
            today=date.today(),
            date_orders=date_orders,
        )

    try:
        if mapping is not None or not saved:
            return parse(mapping), False
        try:
            parsed = parse(None)
        except FileRejected as rejected:
            if rejected.code != "no_header":
                raise
            headers = first_row_texts(content, filename)
            override = _saved_override(headers, saved)
            if not override:
                raise
            return parse(override), True
        override = _saved_override(parsed.headers, saved)
        if all(parsed.mapping.get(key) == value for key, value in override.items()):
            return parsed, bool(override)
        return parse({**parsed.mapping, **override}), True
    except FileRejected as rejected:
        raise InvalidInput(f"file.{rejected.code}", **rejected.params) from None


def _saved_override(
    headers: list[str], saved: dict[str, str | None]
) -> dict[str, str | None]:
    return {
        header: saved[normalise_header(header)]
        for header in headers
        if normalise_header(header) in saved
    }


def preview_cases(
    *,
    session: Session,
    actor: Actor,
    creditor: str | None,
    content: bytes,
    filename: str,
    mapping: dict[str, str | None] | None = None,
    placement_date: date | None = None,
    date_orders: dict[str, str] | None = None,
) -> Preview:
    """Parse a placement file without writing anything, for the preview on the page."""
    require_role(actor, *IMPORT_ROLES)
    _check_size(content)
    saved = _saved_mapping(session, creditor) if creditor else {}
    try:
        parsed, used = _parse(
            content,
            filename,
            mapping=mapping,
            saved=saved,
            placement_date=placement_date,
            date_orders=date_orders,
        )
    except InvalidInput as error:
        if error.code != "file.no_header":
            raise
        headers = first_row_texts(content, filename)
        if not headers:
            raise
        return Preview(
            parsed=None, saved_mapping_used=False, unrecognised_headers=headers
        )
    return Preview(parsed=parsed, saved_mapping_used=used)


def import_cases(
    *,
    session: Session,
    actor: Actor,
    request: ImportRequest,
    content: bytes,
    filename: str,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a placement file as one batch; see the module docstring for the steps."""
    require_role(actor, *IMPORT_ROLES)
    _check_size(content)
    report_progress = progress or (lambda fraction, stage: None)
    language = actor.language

    report_progress(0.05, "parse")
    creditor = _creditor(session, actor, request.creditor.strip())
    parsed, _ = _parse(
        content,
        filename,
        mapping=request.mapping,
        saved=dict(creditor.header_mapping or {}),
        placement_date=request.placement_date,
        date_orders=request.date_orders,
    )
    report = ImportReport(
        creditor=creditor.name,
        file_name=PurePath(filename).name,
        data_rows=parsed.data_rows,
        rejected=[_issue_dict(issue, actor, language) for issue in parsed.rejected],
        warnings=[_issue_dict(issue, actor, language) for issue in parsed.warnings],
        file_issues=[
            _issue_dict(issue, actor, language) for issue in parsed.file_issues
        ],
    )
    if request.mode == "all-or-nothing" and parsed.rejected:
        session.rollback()
        report.refused = True
        report.refusal = "rows_rejected"
        return report

    report_progress(0.3, "write")
    _lock_creditor(session, creditor.id)
    batch = _new_batch(session, actor, creditor, request, parsed, content, filename)
    _create_staging(session)
    _copy_rows(session, parsed.cases, report_progress)
    report.skipped_existing = _drop_existing(session, creditor.id)
    report_progress(0.85, "link")
    _assign_debtor_ids(session, creditor.id)
    imported, total = _insert_cases(session, batch)
    report.imported = imported
    report.total_due_imported = total

    batch.case_count = imported
    batch.total_due = total
    batch.report = _stored_report(report)
    if request.save_mapping and request.mapping is not None:
        _save_mapping(session, actor, creditor, request.mapping)
    audit.record(
        session,
        actor,
        "cases_imported",
        "batch",
        batch.id,
        after={"name": batch.name, "cases": imported, "total_due": total},
        detail={
            "file": report.file_name,
            "sha256": batch.file_sha256,
            "rejected": len(report.rejected),
            "warnings": len(report.warnings),
            "skipped_existing": len(report.skipped_existing),
            "mode": request.mode,
        },
    )
    session.commit()
    report.batch_id = batch.id
    report.batch_name = batch.name
    report_progress(1.0, "done")
    logger.info(
        "batch %s imported: %s cases, %s rejected, %s skipped",
        batch.id,
        imported,
        len(report.rejected),
        len(report.skipped_existing),
    )
    return report


def _creditor(session: Session, actor: Actor, name: str) -> Creditor:
    """Return the creditor called `name`, creating it on its first file."""
    creditor = session.scalar(select(Creditor).where(Creditor.name == name))
    if creditor is not None:
        return creditor
    session.execute(
        text(
            "INSERT INTO creditors (name, compliance_profile) VALUES (:name, :profile) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"name": name, "profile": get_settings().compliance_profile},
    )
    creditor = session.scalar(select(Creditor).where(Creditor.name == name))
    if creditor is None:
        raise NotFound("creditor_not_found", creditor=name)
    audit.record(
        session, actor, "creditor_added", "creditor", creditor.id, after={"name": name}
    )
    return creditor


def _lock_creditor(session: Session, creditor_id: int) -> None:
    # Two imports for one creditor run one after the other, so the second sees the
    # first's cases and reports them as existing instead of failing on the unique key.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('recova.intake'), :creditor)"),
        {"creditor": creditor_id},
    )


def _new_batch(
    session: Session,
    actor: Actor,
    creditor: Creditor,
    request: ImportRequest,
    parsed: ParsedCases,
    content: bytes,
    filename: str,
) -> Batch:
    placement = request.placement_date or parsed.placement_date or date.today()
    base_name = (request.batch_name or "").strip() or (
        f"{PurePath(filename).stem} {placement.isoformat()}"
    )
    taken = set(
        session.scalars(
            select(Batch.name).where(
                Batch.creditor_id == creditor.id, Batch.name.startswith(base_name)
            )
        )
    )
    name, counter = base_name, 2
    while name in taken:
        name, counter = f"{base_name} ({counter})", counter + 1
    batch = Batch(
        creditor_id=creditor.id,
        name=name,
        placement_date=placement,
        recall_date=request.recall_date or parsed.recall_date,
        file_name=PurePath(filename).name[:255],
        file_sha256=hashlib.sha256(content).hexdigest(),
        file_size=len(content),
        mode=request.mode,
        created_by=actor.id,
    )
    session.add(batch)
    session.flush()
    session.add(BatchFile(batch_id=batch.id, content=content))
    session.flush()
    return batch


def _create_staging(session: Session) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in STAGING_COLUMNS.items())
    session.execute(
        text(
            f"CREATE TEMP TABLE intake_staging ({columns}, debtor_id bigint, "
            "new_debtor boolean NOT NULL DEFAULT false) ON COMMIT DROP"
        )
    )


def _copy_rows(session: Session, frame: pl.DataFrame, progress: Progress) -> None:
    """Send the parsed rows to the staging table with COPY, in chunks for progress."""
    columns = list(STAGING_COLUMNS)
    frame = frame.select(
        [
            pl.col(name) if name in frame.columns else pl.lit(None).alias(name)
            for name in columns
        ]
    )
    cursor = session.connection().connection.driver_connection.cursor()
    statement = f"COPY intake_staging ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    total = max(frame.height, 1)
    for offset in range(0, frame.height, COPY_CHUNK_ROWS):
        chunk = frame.slice(offset, COPY_CHUNK_ROWS)
        buffer = io.BytesIO()
        chunk.write_csv(buffer, include_header=False, null_value="")
        with cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())
        progress(0.3 + 0.5 * min(offset + chunk.height, total) / total, "write")


def _drop_existing(session: Session, creditor_id: int) -> list[str]:
    rows = session.execute(
        text(
            "DELETE FROM intake_staging s USING cases c "
            "WHERE c.creditor_id = :creditor AND c.case_no = s.case_no "
            "RETURNING s.row, s.case_no"
        ),
        {"creditor": creditor_id},
    ).all()
    return [case_no for _, case_no in sorted(rows)]


def _assign_debtor_ids(session: Session, creditor_id: int) -> None:
    """Give each staged row its debtor: an existing one by ID number, else a new id."""
    sequence = "pg_get_serial_sequence('debtors', 'id')"
    session.execute(
        text(
            "UPDATE intake_staging s SET debtor_id = d.id FROM debtors d "
            "WHERE d.creditor_id = :creditor AND d.id_number = s.id_number"
        ),
        {"creditor": creditor_id},
    )
    session.execute(
        text(
            f"WITH fresh AS (SELECT id_number, nextval({sequence}) AS id FROM "
            "(SELECT DISTINCT id_number FROM intake_staging "
            " WHERE debtor_id IS NULL AND id_number IS NOT NULL) AS numbers) "
            "UPDATE intake_staging s SET debtor_id = fresh.id, new_debtor = true "
            "FROM fresh WHERE s.id_number = fresh.id_number AND s.debtor_id IS NULL"
        )
    )
    session.execute(
        text(
            f"UPDATE intake_staging SET debtor_id = nextval({sequence}), "
            "new_debtor = true WHERE debtor_id IS NULL"
        )
    )


BUCKET_SQL = """
    CASE
        WHEN current_date - s.overdue_since <= 0 THEN NULL
        WHEN current_date - s.overdue_since <= 30 THEN 'M1'
        WHEN current_date - s.overdue_since <= 60 THEN 'M2'
        WHEN current_date - s.overdue_since <= 90 THEN 'M3'
        WHEN current_date - s.overdue_since <= 120 THEN 'M4'
        WHEN current_date - s.overdue_since <= 150 THEN 'M5'
        WHEN current_date - s.overdue_since <= 180 THEN 'M6'
        ELSE 'M7+'
    END
"""


def _insert_cases(session: Session, batch: Batch) -> tuple[int, Decimal]:
    params = {"creditor": batch.creditor_id, "batch": batch.id}
    placement, recall = batch.placement_date, batch.recall_date
    session.execute(
        text(
            "INSERT INTO debtors (id, creditor_id, name, id_number, phones, email, "
            "address, province, city, customer_type) "
            "SELECT DISTINCT ON (debtor_id) debtor_id, :creditor, name, id_number, "
            "CASE WHEN phone IS NULL THEN '{}'::varchar[] ELSE ARRAY[phone] END, "
            "email, address, province, city, coalesce(customer_type, 'individual') "
            "FROM intake_staging s WHERE new_debtor ORDER BY debtor_id, row"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO contacts (debtor_id, name, relation, phone) "
            "SELECT DISTINCT ON (debtor_id, contact_phone, contact_name) debtor_id, "
            "contact_name, contact_relation, contact_phone FROM intake_staging s "
            "WHERE (contact_name IS NOT NULL OR contact_phone IS NOT NULL) "
            "AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.debtor_id = s.debtor_id "
            "AND c.phone IS NOT DISTINCT FROM s.contact_phone "
            "AND c.name IS NOT DISTINCT FROM s.contact_name)"
        )
    )
    totals = session.execute(
        text(
            "WITH inserted AS ("
            " INSERT INTO cases (creditor_id, batch_id, debtor_id, case_no, row_no, "
            " product, contract_no, principal, interest, fees, total_due, balance, "
            " overdue_since, dpd_at_placement, placement_date, recall_date, bucket, "
            " status, note, extra) "
            " SELECT :creditor, :batch, s.debtor_id, s.case_no, s.row, s.product, "
            " s.contract_no, s.principal, s.interest, s.fees, s.total_due, "
            " s.total_due, "
            " s.overdue_since, s.dpd_at_placement, "
            " coalesce(s.placement_date, :placement), "
            " coalesce(s.recall_date, :recall), "
            f" {BUCKET_SQL}, 'new', s.note, coalesce(s.extra, '{{}}'::jsonb) "
            " FROM intake_staging s ORDER BY s.row "
            " RETURNING total_due) "
            "SELECT count(*), coalesce(sum(total_due), 0) FROM inserted"
        ),
        {**params, "placement": placement, "recall": recall},
    ).one()
    return int(totals[0]), Decimal(totals[1]).quantize(Decimal("0.01"))


def _stored_report(report: ImportReport) -> dict[str, Any]:
    stored = report.as_json()
    stored["rejected_count"] = len(report.rejected)
    stored["warning_count"] = len(report.warnings)
    stored["rejected"] = report.rejected[:STORED_ISSUES]
    stored["warnings"] = report.warnings[:STORED_ISSUES]
    stored["skipped_existing"] = report.skipped_existing[:STORED_ISSUES]
    stored["skipped_count"] = len(report.skipped_existing)
    return stored


def _save_mapping(
    session: Session, actor: Actor, creditor: Creditor, mapping: dict[str, str | None]
) -> None:
    before = dict(creditor.header_mapping or {})
    saved = {
        **before,
        **{normalise_header(key): value for key, value in mapping.items()},
    }
    creditor.header_mapping = saved
    audit.record(
        session,
        actor,
        "header_mapping_saved",
        "creditor",
        creditor.id,
        before=before,
        after=saved,
    )


def save_mapping(
    *, session: Session, actor: Actor, creditor: str, mapping: dict[str, str | None]
) -> None:
    """Store a corrected header mapping for a creditor's next files."""
    require_role(actor, *IMPORT_ROLES)
    row = session.scalar(select(Creditor).where(Creditor.name == creditor.strip()))
    if row is None:
        row = _creditor(session, actor, creditor.strip())
    _save_mapping(session, actor, row, mapping)
    session.commit()


def list_batches(*, session: Session, actor: Actor, creditor_id: int | None = None):
    require_role(actor, "admin", "manager", "team_lead", "finance", "auditor")
    query = select(Batch).order_by(Batch.created_at.desc())
    if creditor_id is not None:
        query = query.where(Batch.creditor_id == creditor_id)
    return list(session.scalars(query))


def batch_file(*, session: Session, actor: Actor, batch_id: int) -> tuple[str, bytes]:
    """Return the original file of a batch, byte for byte."""
    require_role(actor, "admin", "manager", "auditor")
    batch = session.get(Batch, batch_id)
    stored = session.get(BatchFile, batch_id)
    if batch is None or stored is None:
        raise NotFound("batch_not_found", batch_id=batch_id)
    return batch.file_name, stored.content


def report_workbook(report: ImportReport, language: str) -> bytes:
    """Return the import report as an .xlsx workbook in `language`."""
    from recova.i18n import translate
    from services.files.export import write_xlsx

    def label(key: str) -> str:
        return translate(f"report.{key}", language)

    summary = pl.DataFrame(
        {
            label("item"): [
                label("creditor"),
                label("file"),
                label("batch"),
                label("data_rows"),
                label("imported"),
                label("rejected"),
                label("warnings"),
                label("skipped"),
                label("total_due"),
            ],
            label("value"): [
                report.creditor,
                report.file_name,
                report.batch_name or "",
                str(report.data_rows),
                str(report.imported),
                str(len(report.rejected)),
                str(len(report.warnings)),
                str(len(report.skipped_existing)),
                f"{report.total_due_imported:.2f}",
            ],
        }
    )
    issue_columns = {
        "row": label("row"),
        "column": label("column"),
        "value": label("value"),
        "code": label("code"),
        "message": label("message"),
        "fix": label("fix"),
    }

    def issues(rows: list[dict[str, Any]]) -> pl.DataFrame:
        if not rows:
            return pl.DataFrame({name: [] for name in issue_columns.values()})
        localised = [
            {key: issue[key] for key in issue_columns}
            for issue in localise_issues(rows, language)
        ]
        frame = pl.DataFrame(localised, infer_schema_length=None)
        return frame.rename(issue_columns)

    sheets = {
        label("summary"): summary,
        label("rejected"): issues(report.file_issues + report.rejected),
        label("warnings"): issues(report.warnings),
        label("skipped"): pl.DataFrame(
            {label("case_no"): report.skipped_existing},
            schema={label("case_no"): pl.Utf8},
        ),
    }
    return write_xlsx(sheets)
