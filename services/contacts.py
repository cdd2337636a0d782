"""Contact log (催记): record an attempt through the compliance guard, check one
without writing, and list a case's attempts.

Recording an attempt locks the case, checks the version the user saw, runs the
guard of the creditor's compliance profile, writes the attempt and moves the case
on in one transaction: flags the result code sets, the status, the counters the
queue reads, a promise when one was given, and `next_action_at` from the follow-up
date or the strategy's next step. A step whose escalation condition holds tells the
team lead once.
"""

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Case, Contact, User
from db.models_followup import ContactAttempt, ResultCode
from recova.errors import InvalidInput, NotFound
from services import audit, compliance, segments
from services.actors import Actor
from services.case_actions import (
    case_state,
    check_worker,
    lock_case,
    notify,
    set_flag_from_result,
    team_leads,
    touch,
)
from services.cases import check_access
from services.compliance import ComplianceRefused, ComplianceVerdict, PlannedContact
from services.masking import mask_phone
from services.promises import add_promise

logger = logging.getLogger(__name__)

Channel = Literal["phone", "sms", "wechat", "email", "letter", "visit"]
Target = Literal["debtor", "contact", "third_party"]
# An attempt's time may run this far ahead of the server clock (clock drift).
CLOCK_SLACK = timedelta(minutes=2)
# When the strategy has no step left, the case comes back after this many days.
FALLBACK_FOLLOW_UP_DAYS = 3
LIST_LIMIT = 500


class AttemptInput(BaseModel):
    case_id: int
    # None from the CLI: no staleness check.
    expected_version: int | None = None
    channel: Channel
    target: Target = "debtor"
    target_address: str | None = Field(default=None, max_length=200)
    contact_id: int | None = None
    result_code: str = Field(max_length=32)
    note: str | None = Field(default=None, max_length=2000)
    # Default now; not in the future. A time without an offset is the user's own.
    at: datetime | None = None
    next_follow_up_at: datetime | None = None
    recording_ref: str | None = Field(default=None, max_length=200)
    opt_out_included: bool = False
    promise_amount: Decimal | None = Field(
        default=None, gt=0, max_digits=14, decimal_places=2
    )
    promise_due_on: date | None = None

    @field_validator("note", "target_address", "recording_ref")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return (value or "").strip() or None


@dataclass
class AttemptResult:
    attempt_id: int
    case_id: int
    case_version: int
    next_action_at: datetime | None
    warnings: list[str] = field(default_factory=list)
    promise_id: int | None = None


@dataclass
class AttemptRow:
    id: int
    at: datetime
    channel: str
    target: str
    target_address: str | None
    result_code: str
    connected: bool
    right_party: bool
    note: str | None
    next_follow_up_at: datetime | None
    recording_ref: str | None
    collector: str | None
    warnings: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None, actor: Actor) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(actor.timezone))


def _address(session: Session, case: Case, data: AttemptInput) -> str | None:
    """The number or address reached: a phone as digits, the debtor's first phone
    when a call to the debtor names none, a linked contact's phone for a contact."""
    address = data.target_address
    if data.channel == "phone" and address is None:
        if data.contact_id is not None:
            address = session.scalar(
                select(Contact.phone).where(Contact.id == data.contact_id)
            )
        elif data.target == "debtor" and case.debtor.phones:
            address = case.debtor.phones[0]
    if data.channel == "phone":
        return compliance.normalise_phone(address)
    return address


def _check_input(
    session: Session, case: Case, data: AttemptInput, at: datetime, follow_up
) -> None:
    if at > _now() + CLOCK_SLACK:
        raise InvalidInput("attempt_in_future", at=at.isoformat(timespec="minutes"))
    if follow_up is not None and follow_up <= at:
        raise InvalidInput(
            "follow_up_before_attempt", at=follow_up.isoformat(timespec="minutes")
        )
    if (data.promise_amount is None) != (data.promise_due_on is None):
        raise InvalidInput("promise_amount_and_date")
    if data.contact_id is not None:
        owner = session.scalar(
            select(Contact.debtor_id).where(Contact.id == data.contact_id)
        )
        if owner != case.debtor_id:
            raise InvalidInput(
                "contact_not_of_debtor",
                contact_id=data.contact_id,
                case_no=case.case_no,
            )


def _plan(
    data: AttemptInput, code: ResultCode, at: datetime, address: str | None
) -> PlannedContact:
    return PlannedContact(
        channel=data.channel,
        target=data.target,
        at=at,
        connected=code.connected,
        target_address=address,
        note=data.note,
        recording_ref=data.recording_ref,
        opt_out_included=data.opt_out_included,
    )


def check_attempt(
    *, session: Session, actor: Actor, data: AttemptInput
) -> ComplianceVerdict:
    """Return the compliance verdict for a planned attempt, without writing."""
    case = session.get(Case, data.case_id)
    if case is None:
        raise NotFound("case_not_found", case=data.case_id)
    check_worker(actor, case)
    code = compliance.result_code(session, data.result_code)
    at = _aware(data.at, actor) or _now()
    plan = _plan(data, code, at, _address(session, case, data))
    return compliance.check_contact(session=session, case=case, plan=plan)


def record_attempt(
    *, session: Session, actor: Actor, data: AttemptInput
) -> AttemptResult:
    """Record one attempt on a case, after the role, version and compliance checks."""
    at = _aware(data.at, actor) or _now()
    follow_up = _aware(data.next_follow_up_at, actor)
    case = lock_case(session, actor, data.case_id, data.expected_version)
    code = compliance.result_code(session, data.result_code)
    _check_input(session, case, data, at, follow_up)
    address = _address(session, case, data)
    plan = _plan(data, code, at, address)
    compliance.lock_counts(session, case, plan)
    verdict = compliance.check_contact(session=session, case=case, plan=plan)
    if not verdict.allowed:
        session.rollback()
        raise ComplianceRefused(verdict)

    before = case_state(case)
    attempt = ContactAttempt(
        case_id=case.id,
        debtor_id=case.debtor_id,
        collector_id=case.collector_id,
        team_id=case.team_id,
        at=at,
        channel=data.channel,
        target=data.target,
        target_address=address,
        contact_id=data.contact_id,
        result_code=code.code,
        connected=code.connected,
        right_party=code.right_party,
        note=data.note,
        next_follow_up_at=follow_up,
        recording_ref=data.recording_ref,
        warnings=verdict.warnings or None,
        created_by=actor.id,
    )
    session.add(attempt)
    session.flush()

    # Queries first, changes of the case last: the case is written by one flush.
    promised = data.promise_amount is not None and data.promise_due_on is not None
    escalations = _escalate(session, actor, case, at, code, promised)
    next_action_at = follow_up or next_step_at(session, case, at)
    promise = None
    if promised:
        promise = add_promise(
            session,
            actor,
            case,
            data.promise_amount,
            data.promise_due_on,
            attempt_id=attempt.id,
        )
    _advance_case(case, code, at)
    case.next_action_at = next_action_at
    touch(case, actor)
    session.flush()
    audit.record(
        session,
        actor,
        "contact_recorded",
        "contact_attempt",
        attempt.id,
        before=before,
        after=case_state(case),
        detail={
            "case_id": case.id,
            "case_no": case.case_no,
            "channel": data.channel,
            "target": data.target,
            "result": code.code,
            "warnings": verdict.warnings,
            "promise_id": promise.id if promise else None,
            "escalations": escalations,
        },
    )
    session.commit()
    logger.info("attempt %s recorded on case %s", attempt.id, case.id)
    return AttemptResult(
        attempt_id=attempt.id,
        case_id=case.id,
        case_version=case.version,
        next_action_at=case.next_action_at,
        warnings=list(verdict.warnings),
        promise_id=promise.id if promise else None,
    )


def _advance_case(case: Case, code: ResultCode, at: datetime) -> None:
    if code.sets_flag:
        set_flag_from_result(case, code.sets_flag)
    if case.status == "assigned":
        case.status = "in_progress"
    if case.last_attempt_at is None or at > case.last_attempt_at:
        case.last_attempt_at = at
    if code.connected and (
        case.last_connected_at is None or at > case.last_connected_at
    ):
        case.last_connected_at = at
    if case.first_contact_at is None or at < case.first_contact_at:
        case.first_contact_at = at
    case.attempt_count = (case.attempt_count or 0) + 1
    # The collector has worked the case since its promise broke.
    if case.promise_broken_at is not None and at >= case.promise_broken_at:
        case.promise_broken_at = None


# Strategy.


def next_step_day(steps: list[segments.StrategyStep], elapsed: int) -> int | None:
    """Day offset of the first step on or after `elapsed` days since assignment; a
    twin of the SQL function recova_next_step_day."""
    days = []
    for step in steps:
        if elapsed <= step.day:
            days.append(step.day)
        elif step.every_days:
            rounds = math.ceil((elapsed - step.day) / step.every_days)
            days.append(step.day + rounds * step.every_days)
    return min(days) if days else None


def _elapsed_days(case: Case, at: datetime) -> int:
    start = case.assigned_at or at
    return max((at - start) // timedelta(days=1), 0)


def next_step_at(session: Session, case: Case, at: datetime) -> datetime:
    """When the strategy's next step after an attempt at `at` falls due."""
    strategy = segments.current_strategies(session).get(case.strategy or "")
    start = case.assigned_at or at
    day = None
    if strategy is not None:
        day = next_step_day(strategy.steps, _elapsed_days(case, at) + 1)
    if day is None:
        return at + timedelta(days=FALLBACK_FOLLOW_UP_DAYS)
    return start + timedelta(days=day)


def _condition_met(
    session: Session, case: Case, condition: str, code: ResultCode, promised: bool
) -> bool:
    """Return whether an escalation condition is met once this attempt counts."""
    if condition == "no_contact":
        return case.last_connected_at is None and not code.connected
    if condition == "no_right_party":
        return not session.scalar(
            select(func.count())
            .select_from(ContactAttempt)
            .where(ContactAttempt.case_id == case.id, ContactAttempt.right_party)
        )
    if condition == "no_promise":
        return not promised and not session.scalar(
            text(
                "SELECT count(*) FROM promises WHERE case_id = :case"
                " AND status <> 'cancelled'"
            ),
            {"case": case.id},
        )
    if condition == "promise_broken":
        return bool(
            session.scalar(
                text(
                    "SELECT count(*) FROM promises WHERE case_id = :case"
                    " AND status IN ('broken', 'partly_kept')"
                ),
                {"case": case.id},
            )
        )
    return False


def _escalated_before(session: Session, case: Case, key: str) -> bool:
    return bool(
        session.scalar(
            text(
                "SELECT count(*) FROM audit_log WHERE detail ? 'case_id'"
                " AND detail->>'case_id' = :case AND action = 'case_escalated'"
                " AND detail->>'step' = :key"
            ),
            {"case": str(case.id), "key": key},
        )
    )


def _escalate(
    session: Session,
    actor: Actor,
    case: Case,
    at: datetime,
    code: ResultCode,
    promised: bool,
) -> list[str]:
    """Tell the team lead, once per step, of each due step whose condition holds."""
    strategy = segments.current_strategies(session).get(case.strategy or "")
    if strategy is None or case.assigned_at is None:
        return []
    elapsed = _elapsed_days(case, at)
    raised = []
    session.flush()
    for index, step in enumerate(strategy.steps):
        if step.escalation == "none" or step.day > elapsed:
            continue
        key = f"{strategy.code}:{index}"
        if not _condition_met(session, case, step.escalation, code, promised):
            continue
        if _escalated_before(session, case, key):
            continue
        notify(
            session,
            team_leads(session, case),
            "case_escalated",
            case_no=case.case_no,
            case_id=case.id,
            condition=step.escalation,
            day=step.day,
        )
        audit.record(
            session,
            actor,
            "case_escalated",
            "case",
            case.id,
            detail={
                "case_id": case.id,
                "case_no": case.case_no,
                "step": key,
                "condition": step.escalation,
                "day": step.day,
            },
        )
        raised.append(step.escalation)
    return raised


# Reading.


def list_attempts(*, session: Session, actor: Actor, case_id: int) -> list[AttemptRow]:
    """Return the case's attempts, newest first; collectors see masked numbers."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_access(case, actor)
    rows = session.execute(
        select(ContactAttempt, User.username)
        .outerjoin(User, User.id == ContactAttempt.created_by)
        .where(ContactAttempt.case_id == case_id)
        .order_by(ContactAttempt.at.desc(), ContactAttempt.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    result = []
    for row, username in rows:
        address = row.target_address
        if actor.sees_masked_pii and row.channel in ("phone", "sms"):
            address = mask_phone(address)
        result.append(
            AttemptRow(
                id=row.id,
                at=row.at,
                channel=row.channel,
                target=row.target,
                target_address=address,
                result_code=row.result_code,
                connected=row.connected,
                right_party=row.right_party,
                note=row.note,
                next_follow_up_at=row.next_follow_up_at,
                recording_ref=row.recording_ref,
                collector=username,
                warnings=list(row.warnings or []),
            )
        )
    return result
