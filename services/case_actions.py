"""Actions on difficult debtors: pause and resume collection, case flags, and the
request to switch collector, plus the locking and version check that every edit of
a case from the follow-up screens shares.

Each edit locks the case row, compares its version with the one the user saw and
raises Conflict naming who changed it since, checks that the caller may work the case
(a collector their own, a team lead their team's), and writes the audit entry in the
same transaction. Repeating an edit that is already in effect changes nothing.
"""

import logging
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Case, Notification, User
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recova.settings import get_settings
from services import audit
from services.actors import Actor, require_role
from services.segments import local_today

logger = logging.getLogger(__name__)

# Roles that work cases: collectors their own, team leads their team's.
WORKER_ROLES = ("collector", "team_lead", "manager", "admin")
# Clearing a flag needs a supervisor: a collector may set one but not lift it.
SUPERVISOR_ROLES = ("team_lead", "manager", "admin")
FLAGS = (
    "dispute",
    "complaint",
    "deceased",
    "bankrupt",
    "do_not_contact",
    "opt_out_electronic",
)
Flag = Literal[
    "dispute",
    "complaint",
    "deceased",
    "bankrupt",
    "do_not_contact",
    "opt_out_electronic",
]
SYSTEM_NAME = "system"


def _reason(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a reason is required")
    return value


class PauseInput(BaseModel):
    case_id: int
    expected_version: int | None = None
    reason: str = Field(max_length=500)
    resume_on: date

    _check_reason = field_validator("reason")(_reason)


class ResumeInput(BaseModel):
    case_id: int
    expected_version: int | None = None
    reason: str | None = Field(default=None, max_length=500)


class FlagInput(BaseModel):
    case_id: int
    expected_version: int | None = None
    flag: Flag
    on: bool
    reason: str = Field(max_length=500)

    _check_reason = field_validator("reason")(_reason)


class SwitchRequest(BaseModel):
    case_id: int
    expected_version: int | None = None
    reason: str = Field(max_length=500)

    _check_reason = field_validator("reason")(_reason)


# Shared by the follow-up services.


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    zone = ZoneInfo(get_settings().timezone)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def stale_case(session: Session, case: Case) -> Conflict:
    """Return the Conflict for an edit made on an old version of `case`."""
    name = None
    if case.updated_by is not None:
        name = session.scalar(select(User.username).where(User.id == case.updated_by))
    return Conflict(
        "case_edited",
        case_no=case.case_no,
        by=name or SYSTEM_NAME,
        at=_local(case.updated_at),
    )


def check_worker(actor: Actor, case: Case) -> None:
    """Raise unless `actor` may work `case`."""
    require_role(actor, *WORKER_ROLES)
    if actor.role == "collector" and case.collector_id != actor.id:
        raise PermissionDenied("case_not_yours", case_no=case.case_no)
    if actor.role == "team_lead" and case.team_id != actor.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)


def lock_case(
    session: Session,
    actor: Actor,
    case_id: int,
    expected_version: int | None,
    roles: tuple[str, ...] = WORKER_ROLES,
) -> Case:
    """Lock a case for an edit after the role, ownership and version checks.

    `FOR UPDATE OF cases` leaves the eagerly joined debtor and creditor unlocked;
    `populate_existing` replaces any older copy the session holds.
    """
    require_role(actor, *roles)
    case = session.scalars(
        select(Case)
        .where(Case.id == case_id)
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_worker(actor, case)
    if expected_version is not None and case.version != expected_version:
        error = stale_case(session, case)
        session.rollback()
        raise error
    return case


def touch(case: Case, actor: Actor | None) -> None:
    """Mark `case` as changed by `actor`; the ORM adds 1 to its version on flush.

    Each flush of a changed case adds 1, so callers run their queries first and
    change the case last, leaving one flush for the edit.
    """
    case.updated_by = actor.id if actor else None
    case.updated_at = func.now()


def pending_promise_count(session: Session, case_id: int) -> int:
    return int(
        session.scalar(
            text(
                "SELECT count(*) FROM promises WHERE case_id = :case"
                " AND status = 'pending'"
            ),
            {"case": case_id},
        )
        or 0
    )


def working_status(session: Session, case: Case) -> str:
    """The status a case returns to when a pause or dispute is lifted."""
    if case.collector_id is None:
        return "new"
    if pending_promise_count(session, case.id):
        return "promised"
    return "in_progress" if case.attempt_count else "assigned"


def case_state(case: Case) -> dict[str, Any]:
    return {
        "status": case.status,
        "flags": list(case.flags or []),
        "paused_until": case.paused_until,
        "pause_reason": case.pause_reason,
        "next_action_at": case.next_action_at,
        "promise_due_on": case.promise_due_on,
        "switch_requested_at": case.switch_requested_at,
    }


def team_leads(session: Session, case: Case) -> list[int]:
    """Return who hears about a case's escalation: its team's active team leads, or
    the active managers when the team has none."""
    leads: list[int] = []
    if case.team_id is not None:
        leads = list(
            session.scalars(
                select(User.id).where(
                    User.role == "team_lead",
                    User.team_id == case.team_id,
                    User.is_active,
                )
            )
        )
    if not leads:
        leads = list(
            session.scalars(
                select(User.id).where(User.role == "manager", User.is_active)
            )
        )
    return leads


def notify(session: Session, user_ids: list[int], kind: str, **params: Any) -> None:
    for user_id in user_ids:
        session.add(Notification(user_id=user_id, kind=kind, params=params))


def _finish(
    session: Session,
    actor: Actor | None,
    case: Case,
    action: str,
    before: dict[str, Any],
    **detail: Any,
) -> int:
    touch(case, actor)
    session.flush()
    audit.record(
        session,
        actor,
        action,
        "case",
        case.id,
        before=before,
        after=case_state(case),
        detail={"case_id": case.id, "case_no": case.case_no, **detail},
        actor_name=None if actor else SYSTEM_NAME,
    )
    session.commit()
    return case.version


# The actions.


def _check_open(case: Case) -> None:
    if case.status not in OPEN_STATUSES:
        raise InvalidInput("case_not_open", case_no=case.case_no, status=case.status)


def pause_case(*, session: Session, actor: Actor, data: PauseInput) -> int:
    """Stop outreach on a case until `resume_on`; return the case's new version."""
    case = lock_case(session, actor, data.case_id, data.expected_version)
    _check_open(case)
    if case.status == "disputed":
        raise InvalidInput("case_disputed_no_pause", case_no=case.case_no)
    if data.resume_on <= local_today():
        raise InvalidInput("resume_on_not_future", resume_on=data.resume_on.isoformat())
    if (
        case.status == "paused"
        and case.paused_until == data.resume_on
        and case.pause_reason == data.reason
    ):
        return case.version
    before = case_state(case)
    case.status = "paused"
    case.paused_until = data.resume_on
    case.pause_reason = data.reason
    version = _finish(session, actor, case, "case_paused", before, reason=data.reason)
    logger.info("case %s paused until %s", case.id, data.resume_on)
    return version


def _resume(session: Session, actor: Actor | None, case: Case, reason: str) -> int:
    before = case_state(case)
    status = working_status(session, case)
    case.status = status
    case.paused_until = None
    case.pause_reason = None
    return _finish(session, actor, case, "case_resumed", before, reason=reason)


def resume_case(*, session: Session, actor: Actor, data: ResumeInput) -> int:
    """Lift a pause; the case returns to the status its work calls for."""
    case = lock_case(session, actor, data.case_id, data.expected_version)
    if case.status != "paused":
        return case.version
    return _resume(session, actor, case, (data.reason or "").strip() or "manual")


def resume_due_cases(*, session: Session, today: date) -> int:
    """Daily job: resume paused cases whose resume date has come; return how many."""
    ids = list(
        session.scalars(
            select(Case.id)
            .where(Case.status == "paused", Case.paused_until <= today)
            .order_by(Case.id)
        )
    )
    resumed = 0
    for case_id in ids:
        case = session.scalars(
            select(Case)
            .where(Case.id == case_id, Case.status == "paused")
            .with_for_update(of=Case, skip_locked=True)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if case is None or case.paused_until is None or case.paused_until > today:
            session.rollback()
            continue
        _resume(session, None, case, "resume_date")
        resumed += 1
    if resumed:
        logger.info("resumed %s paused cases due by %s", resumed, today)
    return resumed


def set_flag(*, session: Session, actor: Actor, data: FlagInput) -> int:
    """Set or clear a case flag; `dispute` also moves the status to `disputed` and
    back. Only a team lead, manager or admin may clear a flag."""
    roles = WORKER_ROLES if data.on else SUPERVISOR_ROLES
    case = lock_case(session, actor, data.case_id, data.expected_version, roles)
    flags = list(case.flags or [])
    if (data.flag in flags) == data.on:
        return case.version
    if data.on and case.status not in OPEN_STATUSES and data.flag == "dispute":
        raise InvalidInput("case_not_open", case_no=case.case_no, status=case.status)
    before = case_state(case)
    restored = working_status(session, case)
    if data.on:
        case.flags = [*flags, data.flag]
    else:
        case.flags = [flag for flag in flags if flag != data.flag]
    if data.flag == "dispute" and data.on and case.status in OPEN_STATUSES:
        case.status = "disputed"
        case.paused_until = None
    elif data.flag == "dispute" and not data.on and case.status == "disputed":
        case.status = restored
    action = "case_flag_set" if data.on else "case_flag_cleared"
    return _finish(
        session, actor, case, action, before, flag=data.flag, reason=data.reason
    )


def set_flag_from_result(case: Case, flag: str) -> None:
    """Apply the flag a result code sets, inside the caller's transaction."""
    flags = list(case.flags or [])
    if flag not in flags:
        case.flags = [*flags, flag]
    if flag == "dispute" and case.status in OPEN_STATUSES:
        case.status = "disputed"


def request_switch(*, session: Session, actor: Actor, data: SwitchRequest) -> int:
    """A collector asks for another collector on their case; the team lead hears of
    it and makes the switch on the board. A second request changes nothing while
    the first waits."""
    case = lock_case(
        session, actor, data.case_id, data.expected_version, ("collector", "team_lead")
    )
    _check_open(case)
    if switch_pending(case):
        return case.version
    before = case_state(case)
    notify(
        session,
        team_leads(session, case),
        "switch_requested",
        case_no=case.case_no,
        case_id=case.id,
        by=actor.username,
        reason=data.reason,
    )
    case.switch_requested_at = func.now()
    return _finish(
        session, actor, case, "case_switch_requested", before, reason=data.reason
    )


def switch_pending(case: Case) -> bool:
    """True while a switch request waits: it was made after the last assignment."""
    requested = case.switch_requested_at
    if requested is None:
        return False
    return case.assigned_at is None or requested > case.assigned_at
