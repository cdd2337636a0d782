"""Audit entries, written in the same transaction as the change they describe."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.models import AuditEntry
from services.actors import Actor


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    return value


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: Any = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """Add an audit entry to `session`; the caller's commit makes it permanent."""
    session.add(
        AuditEntry(
            actor_id=actor.id if actor else None,
            actor_name=actor_name or (actor.username if actor else None),
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            before=_jsonable(before),
            after=_jsonable(after),
            detail=_jsonable(detail),
        )
    )
