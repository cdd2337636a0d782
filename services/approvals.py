"""Settlement and write-off requests, and their approval by authority level.

A collector or team lead requests a settlement (a discount off the balance) or a
write-off of the balance. Authority limits are settings (defaults 10,000.00 for a
team lead and 100,000.00 for a manager):

- an amount up to the team-lead limit is final with the team lead's approval;
- up to the manager limit, with a manager's approval;
- above it, with a manager's and then an admin's approval.

Requests climb the levels in order. A collector's request starts with the team lead
of the case's team, and each approval moves it one level up until the level whose
authority covers the amount has approved. A team lead's request, or one on a case
whose team has no active team lead, starts with a manager. Limits are read again at
every approval and the final level only ever rises, so an approver whose limit was
lowered while the request waited passes it up instead of completing it.

No one approves their own request or approves the same request twice. Every action
names the step the approver saw, so a repeated click on the same step changes
nothing, and an action on a step someone else already took is a `Conflict`. The
final approval locks the request and the case and moves balance, status and the
audit trail in one transaction.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import (
    APPROVAL_LEVELS,
    OPEN_STATUSES,
    Approval,
    ApprovalRequest,
    AuditEntry,
    Case,
    Creditor,
    Debtor,
    Notification,
    Setting,
    User,
)
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services import audit
from services.actors import Actor, require_role
from services.cases import get_case

logger = logging.getLogger(__name__)

REQUESTER_ROLES = ("collector", "team_lead")
APPROVER_ROLES = ("team_lead", "manager", "admin")
READER_ROLES = ("collector", "team_lead", "manager", "admin", "auditor")
LIMITS_KEY = "approval_limits"
DEFAULT_LIMITS = {"team_lead": Decimal("10000.00"), "manager": Decimal("100000.00")}
# Roles that may act at each level; an admin may do what a manager may.
LEVEL_ROLES = {
    "team_lead": ("team_lead",),
    "manager": ("manager", "admin"),
    "admin": ("admin",),
}
LIST_LIMIT = 200
HISTORY_LIMIT = 100


class NewRequest(BaseModel):
    """A request from the case file.

    For a settlement give either `amount` (the discount) or `new_balance` (the
    balance after the discount). A write-off covers the whole balance; `amount`, if
    given, must equal it.
    """

    case_id: int
    kind: Literal["settlement", "write_off"]
    amount: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    new_balance: Decimal | None = Field(
        default=None, ge=0, max_digits=14, decimal_places=2
    )
    reason: str = Field(min_length=2, max_length=2000)
    evidence: str | None = Field(default=None, max_length=2000)


class Decision(BaseModel):
    """An approver's action on the step they saw (1 for the first approval)."""

    request_id: int
    step: int = Field(ge=1)
    reason: str | None = Field(default=None, max_length=2000)


class ApprovalLimits(BaseModel):
    team_lead: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    manager: Decimal = Field(gt=0, max_digits=14, decimal_places=2)


@dataclass(frozen=True)
class Outcome:
    """The state of a request after an action; `changed` is False for a repeat."""

    request_id: int
    status: str
    next_level: str | None
    changed: bool


# Authority limits.


def get_limits(*, session: Session) -> ApprovalLimits:
    stored = session.scalar(select(Setting.value).where(Setting.key == LIMITS_KEY))
    values = {**DEFAULT_LIMITS, **{k: Decimal(v) for k, v in (stored or {}).items()}}
    return ApprovalLimits(**values)


def set_limits(*, session: Session, actor: Actor, limits: ApprovalLimits) -> None:
    """Store new authority limits (admins only), audited with the old values."""
    require_role(actor, "admin")
    if limits.manager < limits.team_lead:
        raise InvalidInput(
            "limits_out_of_order",
            team_lead=f"{limits.team_lead:.2f}",
            manager=f"{limits.manager:.2f}",
        )
    before = get_limits(session=session)
    value = {"team_lead": f"{limits.team_lead:.2f}", "manager": f"{limits.manager:.2f}"}
    setting = session.get(Setting, LIMITS_KEY, with_for_update=True)
    if setting is None:
        session.add(Setting(key=LIMITS_KEY, value=value))
    else:
        setting.value = value
        setting.updated_at = func.now()
    audit.record(
        session,
        actor,
        "setting_changed",
        "setting",
        LIMITS_KEY,
        before=before.model_dump(),
        after=value,
    )
    session.commit()
    logger.info("approval limits set to %s by user %s", value, actor.id)


def final_level(amount: Decimal, limits: ApprovalLimits) -> str:
    """Return the level whose approval completes a request for `amount`."""
    if amount <= limits.team_lead:
        return "team_lead"
    if amount <= limits.manager:
        return "manager"
    return "admin"


def _rank(level: str) -> int:
    return APPROVAL_LEVELS.index(level)


def _limit_of(level: str, limits: ApprovalLimits) -> Decimal | None:
    return {"team_lead": limits.team_lead, "manager": limits.manager}.get(level)


# Filing a request.


def request_approval(
    *,
    session: Session,
    actor: Actor,
    data: NewRequest,
    evidence_file: tuple[str, bytes] | None = None,
) -> ApprovalRequest:
    """File a settlement or write-off request and notify the first approvers."""
    from services.payments import store_evidence

    require_role(actor, *REQUESTER_ROLES)
    get_case(session=session, actor=actor, case_id=data.case_id)
    case = _lock_case(session, data.case_id)
    if case.status not in OPEN_STATUSES:
        raise InvalidInput(
            "request_case_not_open", case_no=case.case_no, status=case.status
        )
    amount = _requested_amount(case, data)
    limits = get_limits(session=session)
    first = _first_level(session, actor, case)
    last = final_level(amount, limits)
    if _rank(last) < _rank(first):
        last = first

    stored = store_evidence(session, actor, *evidence_file) if evidence_file else None
    request = ApprovalRequest(
        case_id=case.id,
        kind=data.kind,
        amount=amount,
        balance_at_request=case.balance,
        reason=data.reason.strip(),
        evidence=(data.evidence or "").strip() or None,
        evidence_file_id=stored.id if stored else None,
        requested_by=actor.id,
        final_level=last,
        next_level=first,
    )
    session.add(request)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("request_pending_exists", case_no=case.case_no) from None

    audit.record(
        session,
        actor,
        "approval_requested",
        "approval_request",
        request.id,
        after=_request_state(request),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "reason": request.reason,
            "evidence": request.evidence,
            "balance": case.balance,
        },
    )
    _notify_level(session, request, case, first)
    session.commit()
    logger.info("approval request %s filed for case %s", request.id, case.id)
    return request


def _first_level(session: Session, actor: Actor, case: Case) -> str:
    """Return where a request starts: the team lead of the case's team for a
    collector's request when the team has an active team lead, else a manager."""
    if actor.role != "collector" or case.team_id is None:
        return "manager"
    team_lead = session.scalar(
        select(User.id).where(
            User.role == "team_lead", User.team_id == case.team_id, User.is_active
        )
    )
    return "team_lead" if team_lead is not None else "manager"


def _lock_case(session: Session, case_id: int) -> Case:
    """Load a case with a row lock, refreshing any copy the session holds.

    `FOR UPDATE OF cases` leaves the eagerly joined debtor and creditor unlocked,
    which PostgreSQL requires for the nullable side of their outer joins.
    """
    query = (
        select(Case)
        .where(Case.id == case_id)
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).one()


def _requested_amount(case: Case, data: NewRequest) -> Decimal:
    if data.kind == "write_off":
        if data.amount is not None and data.amount != case.balance:
            raise InvalidInput(
                "write_off_not_balance",
                amount=f"{data.amount:.2f}",
                balance=f"{case.balance:.2f}",
            )
        if case.balance <= 0:
            raise InvalidInput("request_nothing_owed", case_no=case.case_no)
        return case.balance

    if (data.amount is None) == (data.new_balance is None):
        raise InvalidInput("settlement_amount_or_balance")
    amount = data.amount
    if amount is None:
        amount = case.balance - data.new_balance
    if amount <= 0 or amount > case.balance:
        raise InvalidInput(
            "settlement_out_of_range",
            amount=f"{amount:.2f}",
            balance=f"{case.balance:.2f}",
        )
    return amount


def _request_state(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "kind": request.kind,
        "amount": request.amount,
        "status": request.status or "pending",
        "next_level": request.next_level,
        "final_level": request.final_level,
    }


# Approving and rejecting.


def approve(*, session: Session, actor: Actor, decision: Decision) -> Outcome:
    """Approve the step the approver saw; the last step moves the case."""
    request, case, repeat = _lock_for_decision(session, actor, decision)
    if repeat is not None:
        return repeat

    limits = get_limits(session=session)
    level = request.next_level
    last = max(request.final_level, final_level(request.amount, limits), key=_rank)
    request.final_level = last
    session.add(
        Approval(
            request_id=request.id,
            step=decision.step,
            level=level,
            approver_id=actor.id,
            decision="approved",
            reason=(decision.reason or "").strip() or None,
            limit_at_decision=_limit_of(level, limits),
        )
    )
    if _rank(level) < _rank(last):
        return _pass_up(session, actor, request, case, level)
    return _complete(session, actor, request, case)


def reject(*, session: Session, actor: Actor, decision: Decision) -> Outcome:
    """Reject the request at the step the approver saw; a reason is required."""
    reason = (decision.reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput("rejection_reason_required")
    request, case, repeat = _lock_for_decision(session, actor, decision)
    if repeat is not None:
        return repeat

    before = _request_state(request)
    session.add(
        Approval(
            request_id=request.id,
            step=decision.step,
            level=request.next_level,
            approver_id=actor.id,
            decision="rejected",
            reason=reason,
            limit_at_decision=_limit_of(
                request.next_level, get_limits(session=session)
            ),
        )
    )
    _close(request, "rejected", reason)
    audit.record(
        session,
        actor,
        "approval_rejected",
        "approval_request",
        request.id,
        before=before,
        after=_request_state(request),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "reason": reason,
            "step": decision.step,
        },
    )
    _notify_requester(session, request, case, "approval_rejected", reason=reason)
    session.commit()
    return Outcome(request.id, request.status, None, True)


def _lock_for_decision(
    session: Session, actor: Actor, decision: Decision
) -> tuple[ApprovalRequest, Case, Outcome | None]:
    """Lock the request and its case and check that `actor` may act on the step.

    Returns an `Outcome` as the third item when the actor already took this very
    step, so a repeated click returns the current state and changes nothing. A
    request whose case was closed, or whose balance no longer fits it, is cancelled
    (committed) and reported as a `Conflict`.
    """
    require_role(actor, *APPROVER_ROLES)
    request = session.get(
        ApprovalRequest,
        decision.request_id,
        with_for_update=True,
        populate_existing=True,
    )
    if request is None:
        raise NotFound("request_not_found", request_id=decision.request_id)
    case = _lock_case(session, request.case_id)

    mine = session.scalar(
        select(Approval).where(
            Approval.request_id == request.id, Approval.approver_id == actor.id
        )
    )
    if mine is not None and mine.step == decision.step:
        repeat = Outcome(request.id, request.status, request.next_level, False)
        session.rollback()
        return request, case, repeat
    if request.requested_by == actor.id:
        raise PermissionDenied("approval_own_request")
    if mine is not None:
        raise Conflict("approval_twice", step=mine.step)
    if request.status != "pending":
        raise Conflict("request_closed", status=request.status)
    decided_steps = _steps_taken(session, request.id)
    if decision.step != decided_steps + 1:
        raise Conflict("request_moved_on", step=decided_steps + 1)
    _check_level(actor, request.next_level, case)
    _check_still_applies(session, actor, request, case)
    return request, case, None


def _check_still_applies(
    session: Session, actor: Actor, request: ApprovalRequest, case: Case
) -> None:
    if case.status not in OPEN_STATUSES:
        _cancel(session, actor, request, case, "request_case_closed")
        raise Conflict("request_case_closed", case_no=case.case_no, status=case.status)
    if _balance_moved(request, case):
        _cancel(session, actor, request, case, "request_balance_changed")
        raise Conflict(
            "request_balance_changed",
            case_no=case.case_no,
            balance=f"{case.balance:.2f}",
        )


def _steps_taken(session: Session, request_id: int) -> int:
    return (
        session.scalar(select(func.count()).where(Approval.request_id == request_id))
        or 0
    )


def _check_level(actor: Actor, level: str, case: Case) -> None:
    if actor.role not in LEVEL_ROLES[level]:
        raise PermissionDenied("approval_level", level=level, role=actor.role)
    if level == "team_lead" and actor.team_id != case.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)


def _pass_up(
    session: Session, actor: Actor, request: ApprovalRequest, case: Case, level: str
) -> Outcome:
    before = _request_state(request)
    request.next_level = APPROVAL_LEVELS[_rank(level) + 1]
    session.flush()
    audit.record(
        session,
        actor,
        "approval_step_approved",
        "approval_request",
        request.id,
        before=before,
        after=_request_state(request),
        detail={"case_id": case.id, "case_no": case.case_no, "level": level},
    )
    _notify_level(session, request, case, request.next_level)
    session.commit()
    return Outcome(request.id, request.status, request.next_level, True)


def _complete(
    session: Session, actor: Actor, request: ApprovalRequest, case: Case
) -> Outcome:
    """Apply an approved request to the case: balance, status and audit together."""
    before = {"balance": case.balance, "status": case.status}
    request_before = _request_state(request)
    applied = case.balance if request.kind == "write_off" else request.amount
    case.balance = case.balance - applied
    if request.kind == "write_off":
        case.status = "written_off"
    elif case.balance == 0:
        case.status = "settled"
    case.updated_by = actor.id
    case.updated_at = func.now()
    _close(request, "approved", None)
    session.flush()

    audit.record(
        session,
        actor,
        "approval_approved",
        "approval_request",
        request.id,
        before=request_before,
        after=_request_state(request),
        detail={"case_id": case.id, "case_no": case.case_no, "applied": applied},
    )
    audit.record(
        session,
        actor,
        f"case_{request.kind}",
        "case",
        case.id,
        before=before,
        after={"balance": case.balance, "status": case.status},
        detail={"case_id": case.id, "request_id": request.id, "applied": applied},
    )
    _notify_requester(session, request, case, "approval_approved")
    session.commit()
    logger.info(
        "approval request %s approved; case %s now %s", request.id, case.id, case.status
    )
    return Outcome(request.id, request.status, None, True)


def _balance_moved(request: ApprovalRequest, case: Case) -> bool:
    """True when payments changed the balance so the request no longer fits it.

    A settlement's discount still applies to a lower balance it does not exceed; a
    write-off never covers more than was approved.
    """
    if request.kind == "settlement":
        return request.amount > case.balance
    return case.balance > request.amount


def _close(request: ApprovalRequest, status: str, reason: str | None) -> None:
    request.status = status
    request.next_level = None
    request.decision_reason = reason
    request.decided_at = func.now()


def _cancel(
    session: Session, actor: Actor, request: ApprovalRequest, case: Case, code: str
) -> None:
    """Close a request that can no longer apply, keeping the record of why.

    The cancellation is committed before the caller raises, so the approver's
    message and the request's state agree.
    """
    before = _request_state(request)
    _close(request, "cancelled", code)
    audit.record(
        session,
        actor,
        "approval_cancelled",
        "approval_request",
        request.id,
        before=before,
        after=_request_state(request),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "reason": code,
            "case_status": case.status,
            "balance": case.balance,
        },
    )
    _notify_requester(session, request, case, "approval_cancelled", reason=code)
    session.commit()


# Notifications.


def _notify_level(
    session: Session, request: ApprovalRequest, case: Case, level: str
) -> None:
    """Tell everyone who may act at `level` that the request awaits them."""
    decided = select(Approval.approver_id).where(Approval.request_id == request.id)
    query = select(User.id).where(
        User.is_active,
        User.role.in_(LEVEL_ROLES[level]),
        User.id != request.requested_by,
        User.id.not_in(decided),
    )
    if level == "team_lead":
        query = query.where(User.team_id == case.team_id)
    elif level == "manager":
        # Admins may act here too, but are notified only when there is no manager.
        managers = list(session.scalars(query.where(User.role == "manager")))
        if managers:
            _add_notifications(session, managers, "approval_waiting", request, case)
            return
    _add_notifications(
        session, list(session.scalars(query)), "approval_waiting", request, case
    )


def _notify_requester(
    session: Session, request: ApprovalRequest, case: Case, kind: str, **params: Any
) -> None:
    _add_notifications(session, [request.requested_by], kind, request, case, **params)


def _add_notifications(
    session: Session,
    user_ids: list[int],
    kind: str,
    request: ApprovalRequest,
    case: Case,
    **params: Any,
) -> None:
    values = {
        "case_no": case.case_no,
        "kind": request.kind,
        "amount": f"{request.amount:.2f}",
        "level": request.next_level,
        **params,
    }
    for user_id in user_ids:
        session.add(
            Notification(
                user_id=user_id, kind=kind, params=values, request_id=request.id
            )
        )


def list_notifications(
    *, session: Session, actor: Actor, unread_only: bool = True
) -> list[Notification]:
    if actor.id is None:
        return []
    query = (
        select(Notification)
        .where(Notification.user_id == actor.id)
        .order_by(Notification.id.desc())
        .limit(LIST_LIMIT)
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list(session.scalars(query))


def mark_read(*, session: Session, actor: Actor, notification_ids: list[int]) -> int:
    """Mark the actor's own notifications read and return how many changed."""
    if actor.id is None or not notification_ids:
        return 0
    changed = session.execute(
        update(Notification)
        .where(
            Notification.user_id == actor.id,
            Notification.id.in_(notification_ids),
            Notification.read_at.is_(None),
        )
        .values(read_at=func.now())
    ).rowcount
    session.commit()
    return changed


# Reading requests.


def _request_rows(session: Session, query) -> list[dict[str, Any]]:
    requester = User.__table__.alias("requester")
    query = (
        query.join(Case, Case.id == ApprovalRequest.case_id)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .join(requester, requester.c.id == ApprovalRequest.requested_by)
        .add_columns(
            Case.case_no,
            Case.balance,
            Case.status.label("case_status"),
            Creditor.name.label("creditor"),
            Debtor.name.label("debtor"),
            requester.c.username.label("requested_by_name"),
        )
        .order_by(ApprovalRequest.created_at, ApprovalRequest.id)
        .limit(LIST_LIMIT)
    )
    rows = []
    for row in session.execute(query):
        request = row[0]
        rows.append(
            {
                "id": request.id,
                "case_id": request.case_id,
                "case_no": row.case_no,
                "creditor": row.creditor,
                "debtor": row.debtor,
                "kind": request.kind,
                "amount": request.amount,
                "balance_at_request": request.balance_at_request,
                "balance": row.balance,
                "case_status": row.case_status,
                "reason": request.reason,
                "evidence": request.evidence,
                "status": request.status,
                "next_level": request.next_level,
                "final_level": request.final_level,
                "requested_by": row.requested_by_name,
                "requested_by_id": request.requested_by,
                "created_at": request.created_at,
                "decision_reason": request.decision_reason,
            }
        )
    return rows


def list_pending(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Return the pending requests the actor may decide now, oldest first."""
    require_role(actor, *APPROVER_ROLES)
    levels = [level for level, roles in LEVEL_ROLES.items() if actor.role in roles]
    decided = select(Approval.request_id).where(Approval.approver_id == actor.id)
    query = select(ApprovalRequest).where(
        ApprovalRequest.status == "pending",
        ApprovalRequest.next_level.in_(levels),
        ApprovalRequest.requested_by != actor.id,
        ApprovalRequest.id.not_in(decided),
    )
    if actor.role == "team_lead":
        team_cases = select(Case.id).where(Case.team_id == actor.team_id)
        query = query.where(ApprovalRequest.case_id.in_(team_cases))
    rows = _request_rows(session, query)
    for row in rows:
        row["step"] = _steps_taken(session, row["id"]) + 1
    return rows


def list_requests(
    *, session: Session, actor: Actor, status: str | None = None
) -> list[dict[str, Any]]:
    """Return the requests the actor may read: own ones, the team's, or all."""
    require_role(actor, *READER_ROLES)
    query = select(ApprovalRequest)
    if status:
        query = query.where(ApprovalRequest.status == status)
    if actor.role == "collector":
        query = query.where(ApprovalRequest.requested_by == actor.id)
    elif actor.role == "team_lead":
        team_cases = select(Case.id).where(Case.team_id == actor.team_id)
        query = query.where(
            or_(
                ApprovalRequest.case_id.in_(team_cases),
                ApprovalRequest.requested_by == actor.id,
            )
        )
    return _request_rows(session, query)


def list_case_requests(
    *, session: Session, actor: Actor, case_id: int
) -> list[dict[str, Any]]:
    get_case(session=session, actor=actor, case_id=case_id)
    query = select(ApprovalRequest).where(ApprovalRequest.case_id == case_id)
    return _request_rows(session, query)


def request_detail(
    *, session: Session, actor: Actor, request_id: int
) -> dict[str, Any]:
    """Return a request with its approvals and the case's history."""
    from services.payments import case_payment_rows

    require_role(actor, *READER_ROLES)
    rows = _request_rows(
        session, select(ApprovalRequest).where(ApprovalRequest.id == request_id)
    )
    if not rows:
        raise NotFound("request_not_found", request_id=request_id)
    detail = rows[0]
    if actor.role == "collector" and detail["requested_by_id"] != actor.id:
        get_case(session=session, actor=actor, case_id=detail["case_id"])
    elif actor.role == "team_lead":
        get_case(session=session, actor=actor, case_id=detail["case_id"])

    detail["approvals"] = _approvals(session, request_id)
    detail["step"] = len(detail["approvals"]) + 1
    detail["payments"] = case_payment_rows(session=session, case_id=detail["case_id"])
    detail["history"] = case_history(session=session, case_id=detail["case_id"])
    return detail


def _approvals(session: Session, request_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Approval, User.username)
        .join(User, User.id == Approval.approver_id)
        .where(Approval.request_id == request_id)
        .order_by(Approval.step)
    )
    return [
        {
            "step": approval.step,
            "level": approval.level,
            "approver": username,
            "decision": approval.decision,
            "reason": approval.reason,
            "limit": approval.limit_at_decision,
            "at": approval.decided_at,
        }
        for approval, username in rows
    ]


def case_history(*, session: Session, case_id: int) -> list[dict[str, Any]]:
    """Return the audit entries about a case, newest first (callers check access)."""
    case_key = str(case_id)
    entries = session.scalars(
        select(AuditEntry)
        .where(
            or_(
                (AuditEntry.entity == "case") & (AuditEntry.entity_id == case_key),
                AuditEntry.detail.has_key("case_id")
                & (AuditEntry.detail["case_id"].astext == case_key),
            )
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return [
        {
            "at": entry.at,
            "actor": entry.actor_name,
            "action": entry.action,
            "before": entry.before,
            "after": entry.after,
        }
        for entry in entries
    ]
