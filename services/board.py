"""The assignment board's reads, and managers' edits of collectors."""

import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from db.models import Batch, Case, Creditor, Debtor, User
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services import audit, auth, segments
from services.actors import MANAGERS, Actor, require_role
from services.assignment import BOARD_ROLES, is_open
from services.users import team_by_name

logger = logging.getLogger(__name__)

UNASSIGNED_LIMIT = 200


class CollectorChange(BaseModel):
    user_id: int
    version: int
    team: str | None = None
    clear_team: bool = False
    regions: list[str] | None = None
    skill: int | None = Field(default=None, ge=1, le=3)
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)
    is_active: bool | None = None
    is_paused: bool | None = None


# Collectors


def _collector_snapshot(user: User) -> dict[str, Any]:
    return {
        "team_id": user.team_id,
        "regions": list(user.regions or []),
        "skill": user.skill,
        "capacity": user.capacity,
        "is_active": user.is_active,
        "is_paused": user.is_paused,
    }


def change_collector(*, session: Session, actor: Actor, data: CollectorChange) -> User:
    """Apply a manager's edit of a collector: team, regions, skill, capacity and
    active or paused state. Pausing keeps the collector's cases; move them with
    `move_open_cases`."""
    require_role(actor, *MANAGERS)
    user = session.get(User, data.user_id)
    if user is None:
        raise NotFound("user_not_found", user_id=data.user_id)
    if user.role != "collector":
        raise InvalidInput("not_a_collector", username=user.username)
    if user.version != data.version:
        raise Conflict("user_changed", username=user.username)
    before = _collector_snapshot(user)
    username = user.username

    if data.clear_team:
        user.team_id = None
    elif data.team is not None and data.team.strip():
        team = team_by_name(session, data.team)
        user.team_id = team.id if team else None
    if data.regions is not None:
        user.regions = [region.strip() for region in data.regions if region.strip()]
    for name in ("skill", "capacity", "is_active", "is_paused"):
        value = getattr(data, name)
        if value is not None:
            setattr(user, name, value)
    if data.is_active is False:
        auth.revoke_sessions(session, user.id)

    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise Conflict("user_changed", username=username) from None
    audit.record(
        session,
        actor,
        "collector_changed",
        "user",
        user.id,
        before=before,
        after=_collector_snapshot(user),
    )
    session.commit()
    return user


# Reading the board


@dataclass
class CollectorLoad:
    user_id: int
    username: str
    display_name: str
    team: str | None
    regions: list[str]
    skill: int
    capacity: int
    is_active: bool
    is_paused: bool
    open_cases: int
    balance: Decimal
    by_segment: dict[str, int]
    version: int


@dataclass
class BoardView:
    collectors: list[CollectorLoad]
    unassigned_total: int
    # The first UNASSIGNED_LIMIT `new` cases, ordered by creditor and id.
    unassigned: list[dict[str, Any]]
    unassigned_by_reason: dict[str, int]
    recall_due: list[dict[str, Any]]


def load_board(
    *, session: Session, actor: Actor, creditor_id: int | None = None
) -> BoardView:
    """Return the board: each collector's open load by segment, the unassigned
    cases with reasons and the batches due for recall.

    Loads count every open case, whatever the creditor, because capacity does.
    Team leads see their own team and no unassigned cases or recalls.
    """
    require_role(actor, *BOARD_ROLES)
    team_lead = actor.role == "team_lead"
    collectors = _collector_loads(session, actor.team_id if team_lead else None)
    if team_lead:
        return BoardView(collectors, 0, [], {}, [])
    total, rows, reasons = _unassigned(session, creditor_id)
    return BoardView(
        collectors=collectors,
        unassigned_total=total,
        unassigned=rows,
        unassigned_by_reason=reasons,
        recall_due=_recall_due(session),
    )


def _collector_loads(session: Session, team_id: int | None) -> list[CollectorLoad]:
    query = select(User).where(User.role == "collector").order_by(User.username)
    if team_id is not None:
        query = query.where(User.team_id == team_id)
    users = session.scalars(query).all()

    # The predicate repeats ix_cases_open_load's with literal statuses, so the
    # planner can read the result from that index alone.
    load_query = (
        select(
            Case.collector_id,
            func.coalesce(Case.segment, "").label("segment"),
            func.count().label("open_cases"),
            func.coalesce(func.sum(Case.balance), 0).label("balance"),
        )
        .where(Case.collector_id.is_not(None), is_open())
        .group_by(Case.collector_id, Case.segment)
    )
    loads: dict[int, dict[str, tuple[int, Decimal]]] = defaultdict(dict)
    for row in session.execute(load_query):
        loads[row.collector_id][row.segment] = (row.open_cases, row.balance)
    return [_collector_load(user, loads.get(user.id, {})) for user in users]


def _collector_load(
    user: User, by_segment: dict[str, tuple[int, Decimal]]
) -> CollectorLoad:
    return CollectorLoad(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        team=user.team.name if user.team else None,
        regions=list(user.regions or []),
        skill=user.skill,
        capacity=user.capacity,
        is_active=user.is_active,
        is_paused=user.is_paused,
        open_cases=sum(count for count, _ in by_segment.values()),
        balance=sum((amount for _, amount in by_segment.values()), Decimal("0.00")),
        by_segment={segment: count for segment, (count, _) in by_segment.items()},
        version=user.version,
    )


def _unassigned(
    session: Session, creditor_id: int | None
) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
    conditions = [Case.status == "new"]
    if creditor_id is not None:
        conditions.append(Case.creditor_id == creditor_id)
    rows = session.execute(
        select(
            Case.id,
            Case.case_no,
            Creditor.name.label("creditor"),
            Debtor.name,
            Debtor.province,
            Case.balance,
            Case.segment,
            Case.unassigned_reason.label("reason"),
            Case.version,
        )
        .join(Debtor, Debtor.id == Case.debtor_id)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .where(*conditions)
        .order_by(Case.creditor_id, Case.id)
        .limit(UNASSIGNED_LIMIT)
    ).mappings()
    reason = func.coalesce(Case.unassigned_reason, "")
    counts = session.execute(
        select(reason, func.count()).where(*conditions).group_by(reason)
    ).all()
    by_reason = {code: count for code, count in counts}
    return sum(by_reason.values()), [dict(row) for row in rows], by_reason


def _recall_due(session: Session) -> list[dict[str, Any]]:
    today = segments.local_today()
    batches = session.execute(
        select(Batch.id, Batch.name, Creditor.name.label("creditor"), Batch.recall_date)
        .join(Creditor, Creditor.id == Batch.creditor_id)
        .where(Batch.recall_date <= today)
        .order_by(Batch.recall_date, Batch.id)
    ).all()
    if not batches:
        return []
    counts = dict(
        session.execute(
            select(Case.batch_id, func.count())
            .where(Case.batch_id.in_([batch.id for batch in batches]), is_open())
            .group_by(Case.batch_id)
        ).all()
    )
    return [
        {**row._asdict(), "open_cases": counts[row.id]}
        for row in batches
        if counts.get(row.id)
    ]


def list_collector_cases(
    *, session: Session, actor: Actor, collector_id: int, limit: int = 500
) -> list[dict[str, Any]]:
    """Return a collector's open cases, highest balance first, for the board."""
    require_role(actor, *BOARD_ROLES)
    user = session.get(User, collector_id)
    if user is None:
        raise NotFound("collector_not_found", user_id=collector_id)
    if actor.role == "team_lead" and user.team_id != actor.team_id:
        raise PermissionDenied("collector_not_your_team", username=user.username)
    rows = session.execute(
        select(
            Case.id,
            Case.case_no,
            Creditor.name.label("creditor"),
            Debtor.name,
            Debtor.province,
            Case.balance,
            Case.segment,
            Case.status,
            Case.version,
            Case.assigned_at,
        )
        .join(Debtor, Debtor.id == Case.debtor_id)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .where(Case.collector_id == collector_id, is_open())
        .order_by(Case.balance.desc(), Case.id)
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]


def case_history(
    *, session: Session, actor: Actor, case_id: int
) -> list[dict[str, Any]]:
    """Return a case's history, oldest first, with collectors' user names."""
    require_role(actor, *BOARD_ROLES, "auditor")
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    if actor.role == "team_lead" and case.team_id != actor.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)
    rows = session.execute(
        text(
            "SELECT e.at, e.kind, e.actor_name, f.username AS from_collector, "
            "t.username AS to_collector, e.reason, e.rule, e.detail "
            "FROM case_events e "
            "LEFT JOIN users f ON f.id = e.from_collector_id "
            "LEFT JOIN users t ON t.id = e.to_collector_id "
            "WHERE e.case_id = :case ORDER BY e.at, e.id"
        ),
        {"case": case_id},
    ).mappings()
    return [dict(row) for row in rows]
