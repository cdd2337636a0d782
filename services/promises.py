"""Promises to pay (承诺还款) and installment plans (分期), and their evaluation
against posted payments.

A promise is kept once the payments paid from the day it was made up to its due
date plus `GRACE_DAYS` reach its amount (net of reversals); otherwise it is judged
once that window has passed: partly kept when some money arrived, broken when none
did. Payments go to the earliest-due promise first, so two overlapping promises never
count the same money. Each evaluation recomputes this split from the payments, and
only pending promises change, so running it twice gives the same result.

A plan is a set of promises: it completes when all of them are kept and breaks when
one is broken or partly kept. A broken promise stamps `cases.promise_broken_at`,
which puts the case at the top of its collector's queue, and tells the collector.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import BigInteger, any_, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from db.models import Case
from db.models_followup import InstallmentPlan, Promise
from recova.errors import InvalidInput, NotFound
from recova.settings import get_settings
from services import audit
from services.actors import Actor
from services.case_actions import (
    SYSTEM_NAME,
    case_state,
    check_worker,
    lock_case,
    notify,
    touch,
)
from services.cases import check_access
from services.segments import local_today

logger = logging.getLogger(__name__)

GRACE_DAYS = 2
# A due date further out than this is more likely a typo than a promise.
MAX_DAYS_AHEAD = 366
PROMISE_STATUSES_OPEN = ("assigned", "in_progress", "promised")
CHUNK_CASES = 500
ZERO = Decimal("0.00")


class PromiseInput(BaseModel):
    case_id: int
    expected_version: int | None = None
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    due_on: date
    attempt_id: int | None = None


class Installment(BaseModel):
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    due_on: date


class PlanInput(BaseModel):
    case_id: int
    expected_version: int | None = None
    installments: list[Installment] = Field(min_length=1, max_length=120)
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return (value or "").strip() or None


@dataclass(frozen=True)
class PromiseRow:
    id: int
    case_id: int
    plan_id: int | None
    amount: Decimal
    due_on: date
    status: str
    paid_amount: Decimal
    collector: str | None
    created_at: datetime
    evaluated_at: datetime | None


# Creating and cancelling.


def _check_promise(case: Case, amount: Decimal, due_on: date, today: date) -> None:
    if case.status not in PROMISE_STATUSES_OPEN:
        raise InvalidInput(
            "promise_case_status", case_no=case.case_no, status=case.status
        )
    if due_on < today:
        raise InvalidInput("promise_due_in_past", due_on=due_on.isoformat())
    if due_on > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidInput(
            "promise_due_too_far", due_on=due_on.isoformat(), days=MAX_DAYS_AHEAD
        )
    if amount > case.balance:
        raise InvalidInput(
            "promise_over_balance",
            amount=f"{amount:.2f}",
            balance=f"{case.balance:.2f}",
        )


def _earliest_pending(session: Session, case_id: int) -> date | None:
    return session.scalar(
        select(Promise.due_on)
        .where(Promise.case_id == case_id, Promise.status == "pending")
        .order_by(Promise.due_on)
        .limit(1)
    )


def add_promise(
    session: Session,
    actor: Actor,
    case: Case,
    amount: Decimal,
    due_on: date,
    *,
    attempt_id: int | None = None,
    plan_id: int | None = None,
    update_case: bool = True,
) -> Promise:
    """Add a promise to a case locked by the caller; the caller audits and commits.

    The promise is flushed before the case changes, so the case is written once,
    with one version step, by the caller's final flush.
    """
    _check_promise(case, amount, due_on, local_today())
    promise = Promise(
        case_id=case.id,
        plan_id=plan_id,
        attempt_id=attempt_id,
        collector_id=case.collector_id,
        amount=amount,
        due_on=due_on,
        status="pending",
        paid_amount=ZERO,
        created_by=actor.id,
    )
    session.add(promise)
    session.flush()
    if update_case:
        mark_promised(session, case)
    return promise


def mark_promised(session: Session, case: Case) -> None:
    due = _earliest_pending(session, case.id)
    case.status = "promised"
    case.promise_due_on = due


def create_promise(*, session: Session, actor: Actor, data: PromiseInput) -> Promise:
    """Record a promise to pay; the case becomes `promised`."""
    case = lock_case(session, actor, data.case_id, data.expected_version)
    before = case_state(case)
    promise = add_promise(
        session, actor, case, data.amount, data.due_on, attempt_id=data.attempt_id
    )
    touch(case, actor)
    session.flush()
    audit.record(
        session,
        actor,
        "promise_created",
        "promise",
        promise.id,
        before=before,
        after={**case_state(case), "amount": promise.amount, "due_on": data.due_on},
        detail={"case_id": case.id, "case_no": case.case_no},
    )
    session.commit()
    return promise


def _check_plan(data: PlanInput, case: Case, today: date) -> Decimal:
    dates = [item.due_on for item in data.installments]
    for earlier, later in zip(dates, dates[1:], strict=False):
        if later <= earlier:
            raise InvalidInput(
                "plan_dates_not_increasing",
                earlier=earlier.isoformat(),
                later=later.isoformat(),
            )
    if dates[0] < today:
        raise InvalidInput("promise_due_in_past", due_on=dates[0].isoformat())
    total = sum((item.amount for item in data.installments), ZERO)
    if total > case.balance:
        raise InvalidInput(
            "plan_over_balance", total=f"{total:.2f}", balance=f"{case.balance:.2f}"
        )
    return total


def create_plan(*, session: Session, actor: Actor, data: PlanInput) -> InstallmentPlan:
    """Record an installment plan; each installment is a promise of its own."""
    case = lock_case(session, actor, data.case_id, data.expected_version)
    total = _check_plan(data, case, local_today())
    before = case_state(case)
    plan = InstallmentPlan(
        case_id=case.id,
        total=total,
        installments=len(data.installments),
        status="active",
        note=data.note,
        created_by=actor.id,
    )
    session.add(plan)
    session.flush()
    for item in data.installments:
        add_promise(
            session,
            actor,
            case,
            item.amount,
            item.due_on,
            plan_id=plan.id,
            update_case=False,
        )
    mark_promised(session, case)
    touch(case, actor)
    session.flush()
    audit.record(
        session,
        actor,
        "plan_created",
        "installment_plan",
        plan.id,
        before=before,
        after={
            **case_state(case),
            "installments": [item.model_dump() for item in data.installments],
        },
        detail={"case_id": case.id, "case_no": case.case_no, "total": total},
    )
    session.commit()
    return plan


def cancel_promise(
    *,
    session: Session,
    actor: Actor,
    promise_id: int,
    reason: str,
    expected_version: int | None = None,
) -> Promise:
    """Cancel a pending promise; cancelling an installment cancels its whole plan."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason_required")
    promise = session.get(Promise, promise_id)
    if promise is None:
        raise NotFound("promise_not_found", promise_id=promise_id)
    case = lock_case(session, actor, promise.case_id, expected_version)
    session.refresh(promise, with_for_update=True)
    if promise.status != "pending":
        return promise
    before = case_state(case)
    cancelled = [promise]
    if promise.plan_id is not None:
        cancelled = list(
            session.scalars(
                select(Promise).where(
                    Promise.plan_id == promise.plan_id, Promise.status == "pending"
                )
            )
        )
        session.execute(
            update(InstallmentPlan)
            .where(InstallmentPlan.id == promise.plan_id)
            .values(status="cancelled")
        )
    for item in cancelled:
        item.status = "cancelled"
    session.flush()
    due = _earliest_pending(session, case.id)
    case.promise_due_on = due
    if case.status == "promised" and due is None:
        case.status = "in_progress"
    touch(case, actor)
    session.flush()
    audit.record(
        session,
        actor,
        "promise_cancelled",
        "promise",
        promise.id,
        before=before,
        after=case_state(case),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "reason": reason,
            "promises": [item.id for item in cancelled],
            "plan_id": promise.plan_id,
        },
    )
    session.commit()
    return promise


def list_promises(*, session: Session, actor: Actor, case_id: int) -> list[PromiseRow]:
    """Return a case's promises, the latest due first."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_access(case, actor)
    rows = session.execute(
        text(
            "SELECT p.id, p.case_id, p.plan_id, p.amount, p.due_on, p.status,"
            " p.paid_amount, u.username AS collector, p.created_at, p.evaluated_at "
            "FROM promises p LEFT JOIN users u ON u.id = p.collector_id "
            "WHERE p.case_id = :case ORDER BY p.due_on DESC, p.id DESC"
        ),
        {"case": case_id},
    ).mappings()
    return [PromiseRow(**row) for row in rows]


# Evaluation.


def _created_on(moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(get_settings().timezone)).date()


def _allocate(
    promises: list[Promise], payments: list[tuple[date, Decimal]]
) -> dict[int, Decimal]:
    """Split the payments over the promises, earliest due first, each payment only
    to promises whose window (made on .. due + grace) contains its date."""
    ordered = sorted(promises, key=lambda p: (p.due_on, p.id))
    need = {p.id: p.amount for p in ordered}
    paid = {p.id: ZERO for p in ordered}
    for paid_on, amount in payments:
        left = amount
        for promise in ordered:
            if left <= 0:
                break
            start = _created_on(promise.created_at)
            end = promise.due_on + timedelta(days=GRACE_DAYS)
            if not start <= paid_on <= end or need[promise.id] <= 0:
                continue
            taken = min(left, need[promise.id])
            need[promise.id] -= taken
            paid[promise.id] += taken
            left -= taken
    return paid


def _verdict(promise: Promise, paid: Decimal, as_of: date) -> str:
    if paid >= promise.amount:
        return "kept"
    if as_of <= promise.due_on + timedelta(days=GRACE_DAYS):
        return "pending"
    return "partly_kept" if paid > 0 else "broken"


def _net_payments(
    session: Session, case_id: int, as_of: date
) -> list[tuple[date, Decimal]]:
    rows = session.execute(
        text(
            "SELECT p.paid_on, p.amount + coalesce(r.amount, 0) AS net "
            "FROM payments p LEFT JOIN payments r ON r.reverses_id = p.id "
            "WHERE p.case_id = :case AND p.amount > 0 AND p.paid_on <= :as_of "
            "ORDER BY p.paid_on, p.id"
        ),
        {"case": case_id, "as_of": as_of},
    ).all()
    return [(paid_on, Decimal(net)) for paid_on, net in rows if net > 0]


def _update_plans(session: Session, plan_ids: set[int]) -> None:
    for plan_id in sorted(plan_ids):
        statuses = set(
            session.scalars(
                select(Promise.status).where(
                    Promise.plan_id == plan_id, Promise.status != "cancelled"
                )
            )
        )
        if statuses & {"broken", "partly_kept"}:
            status = "broken"
        elif statuses == {"kept"}:
            status = "completed"
        else:
            continue
        session.execute(
            update(InstallmentPlan)
            .where(InstallmentPlan.id == plan_id, InstallmentPlan.status == "active")
            .values(status=status)
        )


def _evaluate_case(
    session: Session, case_id: int, as_of: date, counts: dict[str, int]
) -> None:
    case = session.scalars(
        select(Case)
        .where(Case.id == case_id)
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    ).one()
    promises = list(
        session.scalars(
            select(Promise)
            .where(Promise.case_id == case_id, Promise.status != "cancelled")
            .with_for_update()
        )
    )
    paid = _allocate(promises, _net_payments(session, case_id, as_of))
    changes: list[dict[str, Any]] = []
    plans: set[int] = set()
    for promise in promises:
        if promise.status != "pending":
            continue
        status = _verdict(promise, paid[promise.id], as_of)
        counts[status] += 1
        if status == "pending" and promise.paid_amount == paid[promise.id]:
            continue
        changes.append({"promise": promise.id, "to": status, "paid": paid[promise.id]})
        promise.paid_amount = paid[promise.id]
        if status != "pending":
            promise.status = status
            promise.evaluated_at = datetime.now(ZoneInfo("UTC"))
            if promise.plan_id is not None:
                plans.add(promise.plan_id)
    if not changes:
        return
    session.flush()
    _update_plans(session, plans)
    _update_case(session, case, changes)


def _update_case(session: Session, case: Case, changes: list[dict[str, Any]]) -> None:
    before = case_state(case)
    broken = [c for c in changes if c["to"] in ("broken", "partly_kept")]
    due = _earliest_pending(session, case.id)
    values: dict[str, Any] = {"promise_due_on": due}
    if case.status == "promised" and due is None:
        values["status"] = "in_progress"
    if any(c["to"] == "broken" for c in changes):
        values["promise_broken_at"] = datetime.now(ZoneInfo("UTC"))
    if broken and case.collector_id is not None:
        notify(
            session,
            [case.collector_id],
            "promise_broken",
            case_no=case.case_no,
            case_id=case.id,
            count=len(broken),
        )
    changed = any(getattr(case, key) != value for key, value in values.items())
    if changed:
        session.execute(
            update(Case)
            .where(Case.id == case.id)
            .values(**values, version=Case.version + 1, updated_at=text("now()"))
            .execution_options(synchronize_session=False)
        )
    audit.record(
        session,
        None,
        "promises_evaluated",
        "case",
        case.id,
        before=before,
        after={**before, **values},
        detail={"case_id": case.id, "case_no": case.case_no, "changes": changes},
        actor_name=SYSTEM_NAME,
    )
    session.expire(case)


def evaluate_promises(
    *,
    session: Session,
    as_of: date,
    case_ids: list[int] | None = None,
    commit: bool = True,
) -> dict[str, int]:
    """Judge pending promises as of `as_of`; return counts by resulting status.

    With `commit=False` the work joins the caller's transaction (payment posting).
    """
    query = select(Promise.case_id).where(Promise.status == "pending").distinct()
    if case_ids is not None:
        if not case_ids:
            return {}
        # One array parameter: a payment file can touch more cases than the
        # 65,535 parameters a statement may have.
        wanted = bindparam("ids", list(case_ids), type_=ARRAY(BigInteger))
        query = query.where(Promise.case_id == any_(wanted))
    ids = sorted(session.scalars(query))
    counts: dict[str, int] = defaultdict(int)
    for start in range(0, len(ids), CHUNK_CASES):
        for case_id in ids[start : start + CHUNK_CASES]:
            _evaluate_case(session, case_id, as_of, counts)
        if commit:
            session.commit()
    counts["cases"] = len(ids)
    if ids:
        logger.info("promises evaluated on %s cases as of %s", len(ids), as_of)
    return dict(counts)


def check_promise_access(session: Session, actor: Actor, case_id: int) -> None:
    """Raise unless `actor` may record promises on the case (for pages)."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_worker(actor, case)
