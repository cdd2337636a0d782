"""Search and export of the audit log, for auditors and admins.

The log itself is append-only in the database (triggers reject UPDATE, DELETE and
TRUNCATE), so this module only reads. Dates in a search are days in the searcher's
time zone.
"""

import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, Case, Creditor
from services import audit
from services.actors import Actor, require_role

logger = logging.getLogger(__name__)

AUDIT_READERS = ("auditor", "admin")
EXPORT_LIMIT = 100_000


class AuditQuery(BaseModel):
    case_no: str | None = Field(default=None, max_length=64)
    creditor_id: int | None = None
    username: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=64)
    date_from: date | None = None
    date_to: date | None = None
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=100, ge=1, le=1000)


def _day_start(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone))


def _filtered(session: Session, actor: Actor, query: AuditQuery) -> Select:
    statement = select(AuditEntry)
    if query.case_no and query.case_no.strip():
        statement = statement.where(_case_condition(session, query))
    if query.username and query.username.strip():
        statement = statement.where(AuditEntry.actor_name == query.username.strip())
    if query.action:
        statement = statement.where(AuditEntry.action == query.action)
    if query.date_from:
        statement = statement.where(
            AuditEntry.at >= _day_start(query.date_from, actor.timezone)
        )
    if query.date_to:
        end = _day_start(query.date_to + timedelta(days=1), actor.timezone)
        statement = statement.where(AuditEntry.at < end)
    return statement


def _case_condition(session: Session, query: AuditQuery):
    """Entries whose entity is one of the cases, or whose detail names one of them."""
    ids = select(Case.id).where(Case.case_no == query.case_no.strip())
    if query.creditor_id:
        ids = ids.where(Case.creditor_id == query.creditor_id)
    keys = [str(case_id) for case_id in session.scalars(ids)]
    if not keys:
        return AuditEntry.id.is_(None)
    # The `?` test repeats the partial index's predicate, so the index is used.
    return or_(
        (AuditEntry.entity == "case") & AuditEntry.entity_id.in_(keys),
        AuditEntry.detail.has_key("case_id")
        & AuditEntry.detail["case_id"].astext.in_(keys),
    )


def _as_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "user": entry.actor_name,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "before": entry.before,
        "after": entry.after,
        "detail": entry.detail,
    }


def search(
    *, session: Session, actor: Actor, query: AuditQuery
) -> tuple[list[dict[str, Any]], bool]:
    """Return one page of matching entries, newest first, and whether more follow."""
    require_role(actor, *AUDIT_READERS)
    offset = (query.page - 1) * query.page_size
    entries = session.scalars(
        _filtered(session, actor, query)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset(offset)
        .limit(query.page_size + 1)
    ).all()
    rows = [_as_row(entry) for entry in entries[: query.page_size]]
    return rows, len(entries) > query.page_size


def list_actions(*, session: Session, actor: Actor) -> list[str]:
    require_role(actor, *AUDIT_READERS)
    return list(
        session.scalars(select(AuditEntry.action).distinct().order_by("action"))
    )


def list_creditors(*, session: Session, actor: Actor) -> list[Creditor]:
    require_role(actor, *AUDIT_READERS)
    return list(session.scalars(select(Creditor).order_by(Creditor.name)))


def export_entries(
    *, session: Session, actor: Actor, query: AuditQuery
) -> list[dict[str, Any]]:
    """Return every matching entry (at most 100,000), and record the export."""
    require_role(actor, *AUDIT_READERS)
    statement = _filtered(session, actor, query)
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    entries = session.scalars(
        statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(
            EXPORT_LIMIT
        )
    ).all()
    audit.record(
        session,
        actor,
        "audit_log_exported",
        "audit_log",
        None,
        detail={
            "filters": query.model_dump(exclude={"page", "page_size"}),
            "rows": len(entries),
            "matching": total,
        },
    )
    session.commit()
    logger.info("audit log exported by user %s: %s rows", actor.id, len(entries))
    return [_as_row(entry) for entry in entries]
