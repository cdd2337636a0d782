"""Manual moves of cases: assignment by hand, switch of collector, the move of a
paused collector's cases, and recall of a batch.

Each move takes the assignment lock of `services.assignment`, locks the cases with
SELECT ... FOR UPDATE and compares each case's `version` with the one the board
showed, so a move made on a stale board raises Conflict instead of overwriting
someone else's change. Every move is written to the case history and the audit log
in the same transaction.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Batch, Case, CaseEvent, User
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recova.settings import get_settings
from services import audit, segments
from services.actors import MANAGERS, Actor, require_role
from services.assignment import (
    BOARD_ROLES,
    CollectorState,
    PendingCase,
    Plan,
    best_collector,
    is_open,
    load_cases,
    load_collectors,
    lock_assignment,
    open_statuses,
    plan_assignment,
    strategy_timing,
)

logger = logging.getLogger(__name__)

MAX_MANUAL_CASES = 1_000


class CaseRef(BaseModel):
    """A case as the board showed it: its id and the version the board loaded."""

    case_id: int
    version: int


def _required_reason(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a reason is required")
    return value


class ManualAssignment(BaseModel):
    cases: list[CaseRef] = Field(min_length=1, max_length=MAX_MANUAL_CASES)
    collector_id: int
    reason: str = Field(max_length=500)

    _check_reason = field_validator("reason")(_required_reason)


class SwitchRequest(BaseModel):
    case: CaseRef
    reason: str = Field(max_length=500)
    # None lets the service pick by the automatic rule.
    collector_id: int | None = None

    _check_reason = field_validator("reason")(_required_reason)


class MoveOpenCases(BaseModel):
    collector_id: int
    reason: str = Field(max_length=500)
    # None spreads the cases by the automatic rule.
    to_collector_id: int | None = None

    _check_reason = field_validator("reason")(_required_reason)


@dataclass(frozen=True)
class Move:
    case_id: int
    case_no: str
    version: int
    from_collector_id: int | None
    to_collector_id: int
    to_team_id: int | None
    strategy: str | None


@dataclass(frozen=True)
class MoveResult:
    moved: list[tuple[str, str]]
    # Cases that no collector could take, with the reason code.
    left: list[tuple[str, str]] = field(default_factory=list)


MOVE_SQL = """
WITH moved AS (
    UPDATE cases c SET
        status = CASE WHEN c.status = 'new' THEN 'assigned' ELSE c.status END,
        collector_id = u.collector_id,
        team_id = u.team_id,
        assigned_at = now(),
        first_contact_due_at = now() + make_interval(hours => u.hours),
        next_action_at = now() + make_interval(days => u.first_day),
        unassigned_reason = NULL,
        version = c.version + 1,
        updated_by = :actor_id,
        updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:versions AS int[]),
                CAST(:collectors AS int[]), CAST(:teams AS int[]),
                CAST(:hours AS int[]), CAST(:first_days AS int[]),
                CAST(:previous AS int[]))
        AS u(id, version, collector_id, team_id, hours, first_day, previous)
    WHERE c.id = u.id AND c.version = u.version
    RETURNING c.id, u.previous, u.collector_id
),
logged AS (
    INSERT INTO case_events (case_id, actor_id, actor_name, kind, from_collector_id,
                             to_collector_id, reason, rule, detail)
    SELECT id, :actor_id, :actor_name,
        CASE WHEN previous IS NULL THEN 'assigned' ELSE :kind END,
        previous, collector_id, :reason, :rule, CAST(:detail AS jsonb)
    FROM moved
    RETURNING case_id
)
SELECT count(*) FROM logged
"""


def _write_moves(
    session: Session,
    actor: Actor,
    moves: list[Move],
    *,
    kind: str,
    rule: str,
    reason: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write moves of cases locked by the caller, one UPDATE for all of them."""
    strategies = segments.current_strategies(session)
    timing = [
        strategy_timing(strategies[m.strategy]) if m.strategy in strategies else (24, 0)
        for m in moves
    ]
    written = session.execute(
        text(MOVE_SQL),
        {
            "ids": [m.case_id for m in moves],
            "versions": [m.version for m in moves],
            "collectors": [m.to_collector_id for m in moves],
            "teams": [m.to_team_id for m in moves],
            "hours": [hours for hours, _ in timing],
            "first_days": [day for _, day in timing],
            "previous": [m.from_collector_id for m in moves],
            "actor_id": actor.id,
            "actor_name": actor.username,
            "kind": kind,
            "rule": rule,
            "reason": reason,
            "detail": json.dumps(detail or {}),
        },
    ).scalar_one()
    if written != len(moves):
        # The rows were locked before the versions were compared, so this means a
        # bug, not a race; nothing of the transaction is kept.
        session.rollback()
        raise Conflict("cases_changed_during_move", count=len(moves) - written)


def _lock_cases(session: Session, case_ids: list[int]) -> dict[int, PendingCase]:
    rows = load_cases(session, Case.id.in_(sorted(set(case_ids))), lock=True)
    return {row.id: row for row in rows}


def _check_case(
    session: Session, actor: Actor, case: PendingCase | None, ref: CaseRef
) -> PendingCase:
    if case is None:
        raise NotFound("case_not_found", case=ref.case_id)
    if actor.role == "team_lead" and case.team_id != actor.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)
    if case.version != ref.version:
        raise _stale(session, case)
    return case


def _stale(session: Session, case: PendingCase) -> Conflict:
    """Return the Conflict for a case changed since the board was loaded, naming
    who changed it last and when."""
    last = session.execute(
        select(CaseEvent.actor_name, CaseEvent.at)
        .where(CaseEvent.case_id == case.id)
        .order_by(CaseEvent.at.desc(), CaseEvent.id.desc())
        .limit(1)
    ).first()
    if last is None:
        row = session.execute(
            select(User.username, Case.updated_at)
            .outerjoin(User, User.id == Case.updated_by)
            .where(Case.id == case.id)
        ).one()
        last = row
    name, at = last
    return Conflict(
        "case_changed",
        case_no=case.case_no,
        by=name or "?",
        at=_local_time(at),
    )


def _local_time(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    local = moment.astimezone(ZoneInfo(get_settings().timezone))
    return local.strftime("%Y-%m-%d %H:%M")


def _check_open(case: PendingCase) -> None:
    if case.status not in OPEN_STATUSES:
        raise InvalidInput("case_closed", case_no=case.case_no, status=case.status)


def _target(
    session: Session, actor: Actor, collector_id: int, extra_cases: int
) -> CollectorState:
    """Return the collector a case is moved to, after checking that they can take
    `extra_cases` more cases."""
    found = load_collectors(session, user_ids=[collector_id])
    if not found:
        raise NotFound("collector_not_found", user_id=collector_id)
    target = found[0]
    if actor.role == "team_lead" and target.team_id != actor.team_id:
        raise PermissionDenied("collector_not_your_team", username=target.username)
    if not target.is_active:
        raise InvalidInput("collector_inactive", username=target.username)
    if target.is_paused:
        raise InvalidInput("collector_paused", username=target.username)
    if target.open_cases + extra_cases > target.capacity:
        raise InvalidInput(
            "collector_full",
            username=target.username,
            capacity=target.capacity,
            open_cases=target.open_cases,
            count=extra_cases,
        )
    return target


def assign_cases(
    *, session: Session, actor: Actor, data: ManualAssignment
) -> MoveResult:
    """Assign or reassign the selected cases to one collector, with a reason.

    All cases move or none does: a case that changed since the board was loaded
    raises Conflict naming who changed it.
    """
    require_role(actor, *BOARD_ROLES)
    lock_assignment(session)
    refs = list({ref.case_id: ref for ref in reversed(data.cases)}.values())
    locked = _lock_cases(session, [ref.case_id for ref in refs])
    cases = []
    for ref in sorted(refs, key=lambda item: item.case_id):
        case = _check_case(session, actor, locked.get(ref.case_id), ref)
        _check_open(case)
        if case.collector_id == data.collector_id:
            raise InvalidInput("case_already_with", case_no=case.case_no)
        cases.append(case)
    target = _target(session, actor, data.collector_id, len(cases))

    moves = [_move(case, target) for case in cases]
    _write_moves(
        session, actor, moves, kind="reassigned", rule="manual", reason=data.reason
    )
    audit.record(
        session,
        actor,
        "cases_assigned",
        "collector",
        target.id,
        before={c.case_no: c.collector_id for c in cases},
        after={c.case_no: target.id for c in cases},
        detail={"reason": data.reason, "rule": "manual", "count": len(cases)},
    )
    session.commit()
    logger.info(
        "%s moved %s cases to collector %s by hand",
        actor.username,
        len(cases),
        target.id,
    )
    return MoveResult(moved=[(c.case_no, target.username) for c in cases])


def _move(case: PendingCase, target: CollectorState) -> Move:
    return Move(
        case_id=case.id,
        case_no=case.case_no,
        version=case.version,
        from_collector_id=case.collector_id,
        to_collector_id=target.id,
        to_team_id=target.team_id,
        strategy=case.strategy,
    )


def previous_collectors(session: Session, case_id: int) -> set[int]:
    """Return every collector who has held the case, the current one included."""
    rows = session.execute(
        text(
            "SELECT collector_id FROM cases WHERE id = :case AND collector_id IS NOT "
            "NULL UNION SELECT from_collector_id FROM case_events WHERE case_id = "
            ":case AND from_collector_id IS NOT NULL UNION SELECT to_collector_id "
            "FROM case_events WHERE case_id = :case AND to_collector_id IS NOT NULL"
        ),
        {"case": case_id},
    ).scalars()
    return set(rows)


def switch_collector(
    *, session: Session, actor: Actor, data: SwitchRequest
) -> MoveResult:
    """Give a case to a collector who has never held it (换人催收).

    Without a named collector, the automatic rule picks one among those who never
    held the case. A named collector who held it before is rejected.
    """
    require_role(actor, *BOARD_ROLES)
    lock_assignment(session)
    locked = _lock_cases(session, [data.case.case_id])
    case = _check_case(session, actor, locked.get(data.case.case_id), data.case)
    _check_open(case)
    if case.collector_id is None:
        raise InvalidInput("case_not_assigned", case_no=case.case_no)
    excluded = previous_collectors(session, case.id)

    if data.collector_id is not None:
        if data.collector_id in excluded:
            name = session.get(User, data.collector_id)
            raise InvalidInput(
                "switch_to_previous",
                case_no=case.case_no,
                username=name.username if name else data.collector_id,
            )
        target = _target(session, actor, data.collector_id, 1)
    else:
        team = actor.team_id if actor.role == "team_lead" else None
        pool = load_collectors(session, team_id=team)
        target = best_collector(case, pool, excluded)
        if target is None:
            raise InvalidInput("switch_no_candidate", case_no=case.case_no)

    _write_moves(
        session,
        actor,
        [_move(case, target)],
        kind="switched",
        rule="switch",
        reason=data.reason,
        detail={"excluded": sorted(excluded)},
    )
    audit.record(
        session,
        actor,
        "case_switched",
        "case",
        case.id,
        before={"collector_id": case.collector_id},
        after={"collector_id": target.id},
        detail={"reason": data.reason, "excluded": sorted(excluded)},
    )
    session.commit()
    return MoveResult(moved=[(case.case_no, target.username)])


def move_open_cases(
    *, session: Session, actor: Actor, data: MoveOpenCases
) -> MoveResult:
    """Move every open case of a paused or inactive collector in one action.

    With a target collector, all cases go to them; otherwise the automatic rule
    spreads them over the other collectors. Cases that no one can take stay with the
    collector and are returned with the reason.
    """
    require_role(actor, *BOARD_ROLES)
    lock_assignment(session)
    source = _source_collector(session, actor, data.collector_id)
    cases = load_cases(session, Case.collector_id == source.id, is_open(), lock=True)
    if not cases:
        session.rollback()
        return MoveResult(moved=[])

    if data.to_collector_id is not None:
        if data.to_collector_id == source.id:
            raise InvalidInput("case_already_with", case_no=cases[0].case_no)
        target = _target(session, actor, data.to_collector_id, len(cases))
        plan = Plan(assigned=[(case, target) for case in cases])
    else:
        team = actor.team_id if actor.role == "team_lead" else None
        pool = [c for c in load_collectors(session, team_id=team) if c.id != source.id]
        plan = plan_assignment(cases, pool)

    moves = [_move(case, target) for case, target in plan.assigned]
    if moves:
        _write_moves(
            session,
            actor,
            moves,
            kind="reassigned",
            rule="collector_paused",
            reason=data.reason,
        )
    audit.record(
        session,
        actor,
        "open_cases_moved",
        "collector",
        source.id,
        after={case.case_no: target.id for case, target in plan.assigned},
        detail={
            "reason": data.reason,
            "moved": len(moves),
            "left": {case.case_no: why for case, why in plan.unassigned},
        },
    )
    session.commit()
    return MoveResult(
        moved=[(case.case_no, target.username) for case, target in plan.assigned],
        left=[(case.case_no, why) for case, why in plan.unassigned],
    )


def _source_collector(session: Session, actor: Actor, user_id: int) -> CollectorState:
    found = load_collectors(session, user_ids=[user_id])
    if not found:
        raise NotFound("collector_not_found", user_id=user_id)
    source = found[0]
    if actor.role == "team_lead" and source.team_id != actor.team_id:
        raise PermissionDenied("collector_not_your_team", username=source.username)
    if source.available:
        raise InvalidInput("collector_not_paused", username=source.username)
    return source


# Recall


@dataclass(frozen=True)
class RecallResult:
    batch: str
    recalled: list[str]


RECALL_SQL = text("""
WITH recalled AS (
    UPDATE cases c SET
        status = 'recalled',
        next_action_at = NULL,
        version = c.version + 1,
        updated_by = :actor_id,
        updated_at = now()
    WHERE c.batch_id = :batch
        AND c.status IN :open
        AND coalesce(c.recall_date, CAST(:batch_recall AS date)) <= CAST(:today AS date)
    RETURNING c.id, c.case_no, c.collector_id
),
logged AS (
    INSERT INTO case_events (case_id, actor_id, actor_name, kind, from_collector_id,
                             reason, rule, detail)
    SELECT id, :actor_id, :actor_name, 'recalled', collector_id, :reason, 'recall',
        jsonb_build_object('batch', CAST(:batch AS int))
    FROM recalled
    RETURNING case_id
)
SELECT r.case_no FROM recalled r JOIN logged l ON l.case_id = r.id ORDER BY r.case_no
""").bindparams(open_statuses())


def recall_batch(
    *,
    session: Session,
    actor: Actor,
    batch_id: int,
    reason: str | None = None,
    today: date | None = None,
) -> RecallResult:
    """Return a batch's open cases to the creditor (退案) once its recall date came.

    A case with its own recall date later than today stays open. Calling it again
    recalls nothing more.
    """
    require_role(actor, *MANAGERS)
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound("batch_not_found", batch_id=batch_id)
    today = today or segments.local_today()
    if batch.recall_date is None:
        raise InvalidInput("recall_date_missing", batch=batch.name)
    if batch.recall_date > today:
        raise InvalidInput(
            "recall_not_due", batch=batch.name, date=batch.recall_date.isoformat()
        )

    lock_assignment(session)
    reason = (reason or "").strip() or None
    case_nos = (
        session.execute(
            RECALL_SQL,
            {
                "batch": batch.id,
                "batch_recall": batch.recall_date,
                "today": today,
                "actor_id": actor.id,
                "actor_name": actor.username,
                "reason": reason,
            },
        )
        .scalars()
        .all()
    )
    audit.record(
        session,
        actor,
        "batch_recalled",
        "batch",
        batch.id,
        detail={
            "recall_date": batch.recall_date,
            "recalled": len(case_nos),
            "reason": reason,
        },
    )
    session.commit()
    logger.info(
        "batch %s recalled by %s: %s cases", batch.id, actor.username, len(case_nos)
    )
    return RecallResult(batch=batch.name, recalled=list(case_nos))
