"""The case file (债务人档案): everything about one case and its debtor in one read,
and unmasking of personal data with a reason, audited.

Each section is one indexed query on the case id (or the debtor id), so a section
costs the same with 5 million cases and 20 million attempts as with a hundred.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Case, Contact, Debtor
from recova.errors import InvalidInput, NotFound
from recova.settings import get_settings
from services import audit
from services.actors import Actor
from services.attachments import AttachmentRow, attachment_rows
from services.cases import CaseView, check_access, load_view
from services.masking import mask_phone
from services.payments import case_payment_rows
from services.segments import StrategyStep, current_strategies

logger = logging.getLogger(__name__)

UnmaskField = Literal["id_number", "phones", "address", "contacts"]
UNMASK_FIELDS = ("id_number", "phones", "address", "contacts")
MIN_REASON_LENGTH = 5
# Characters of an address shown to a collector before the mask.
ADDRESS_SHOWN = 6


@dataclass
class NextStep:
    """The strategy step that comes next: its channel and target, the day counted
    from assignment, and when it is due."""

    strategy: str
    day: int
    channel: str
    target: str
    escalation: str
    due_at: datetime | None


@dataclass
class CaseFile:
    case: CaseView
    follow_up: dict[str, Any]
    payments: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    promises: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    history: list[dict[str, Any]]
    attachments: list[AttachmentRow]
    next_step: NextStep | None
    compliance_profile: str
    masked: bool
    # Ids of the debtor's contacts, in the order of `case.contacts`.
    contact_ids: list[int]
    can_write: bool = False


def mask_address(value: str | None) -> str | None:
    if not value:
        return value
    return value[:ADDRESS_SHOWN] + "****"


FOLLOW_UP_COLUMNS = (
    "status",
    "flags",
    "segment",
    "strategy",
    "risk_grade",
    "risk_score",
    "assigned_at",
    "first_contact_due_at",
    "first_contact_at",
    "last_attempt_at",
    "last_connected_at",
    "attempt_count",
    "next_action_at",
    "promise_due_on",
    "promise_broken_at",
    "paused_until",
    "pause_reason",
    "switch_requested_at",
    "version",
    "collector_id",
    "team_id",
)

ATTEMPTS_SQL = """
SELECT a.id, a.at, a.channel, a.target, a.target_address, a.result_code,
    a.connected, a.right_party, a.note, a.next_follow_up_at, a.recording_ref,
    a.warnings, u.username AS collector
FROM contact_attempts a LEFT JOIN users u ON u.id = a.collector_id
WHERE a.case_id = :case ORDER BY a.at DESC, a.id DESC LIMIT :limit
"""
PROMISES_SQL = """
SELECT p.id, p.plan_id, p.amount, p.due_on, p.status, p.paid_amount,
    p.created_at, p.evaluated_at, u.username AS created_by
FROM promises p LEFT JOIN users u ON u.id = p.created_by
WHERE p.case_id = :case ORDER BY p.due_on DESC, p.id DESC
"""
PLANS_SQL = """
SELECT pl.id, pl.total, pl.installments, pl.status, pl.note, pl.created_at,
    u.username AS created_by
FROM installment_plans pl LEFT JOIN users u ON u.id = pl.created_by
WHERE pl.case_id = :case ORDER BY pl.id DESC
"""
HISTORY_SQL = """
SELECT e.at, e.kind, e.actor_name, f.username AS from_collector,
    t.username AS to_collector, e.reason, e.rule
FROM case_events e
LEFT JOIN users f ON f.id = e.from_collector_id
LEFT JOIN users t ON t.id = e.to_collector_id
WHERE e.case_id = :case ORDER BY e.at, e.id
"""
# Attempts shown in the case file; older ones stay in the database and the exports.
ATTEMPT_LIMIT = 500


def _readable_case(session: Session, actor: Actor, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_access(case, actor)
    return case


def case_attempts(session: Session, case_id: int, masked: bool) -> list[dict]:
    rows = session.execute(
        text(ATTEMPTS_SQL), {"case": case_id, "limit": ATTEMPT_LIMIT}
    ).mappings()
    result = []
    for row in rows:
        item = dict(row)
        if masked and item["channel"] in ("phone", "sms"):
            item["target_address"] = mask_phone(item["target_address"])
        item["warnings"] = list(item["warnings"] or [])
        result.append(item)
    return result


def _rows(session: Session, sql: str, case_id: int) -> list[dict[str, Any]]:
    return [
        dict(row) for row in session.execute(text(sql), {"case": case_id}).mappings()
    ]


def next_step(
    steps: list[StrategyStep],
    assigned_at: datetime | None,
    last_attempt_at: datetime | None,
    now: datetime,
) -> tuple[StrategyStep, int] | None:
    """Return the strategy's next step and its day, counted from assignment.

    The next step is the first one due on or after today. A step whose day already
    had an attempt is done, so the search starts the day after that attempt.
    """
    if assigned_at is None or not steps:
        return None
    zone = now.tzinfo or ZoneInfo(get_settings().timezone)
    start = assigned_at.astimezone(zone).date()
    elapsed = max((now.astimezone(zone).date() - start).days, 0)
    if last_attempt_at is not None:
        attempted = (last_attempt_at.astimezone(zone).date() - start).days
        elapsed = max(elapsed, attempted + 1)

    best: tuple[StrategyStep, int] | None = None
    for step in steps:
        if elapsed <= step.day:
            day = step.day
        elif step.every_days:
            periods = -(-(elapsed - step.day) // step.every_days)
            day = step.day + periods * step.every_days
        else:
            continue
        if best is None or day < best[1]:
            best = (step, day)
    return best


def _next_step(session: Session, case: Case) -> NextStep | None:
    if not case.strategy:
        return None
    strategy = current_strategies(session).get(case.strategy)
    if strategy is None:
        return None
    zone = ZoneInfo(get_settings().timezone)
    found = next_step(
        strategy.steps, case.assigned_at, case.last_attempt_at, datetime.now(zone)
    )
    if found is None:
        return None
    step, day = found
    due_at = case.next_action_at
    if due_at is None and case.assigned_at is not None:
        due_at = case.assigned_at + timedelta(days=day)
    return NextStep(
        strategy=strategy.code,
        day=day,
        channel=step.channel,
        target=step.target,
        escalation=step.escalation,
        due_at=due_at,
    )


def _can_write(actor: Actor, case: Case) -> bool:
    if actor.role in ("auditor", "finance"):
        return False
    return case.status not in ("paid", "settled", "written_off", "recalled")


def case_file(*, session: Session, actor: Actor, case_id: int) -> CaseFile:
    """Return the whole case file of one case the actor may read.

    A collector gets only their own cases, with ID numbers, phones and the address
    masked. A team lead gets the team's cases, and an auditor reads every case.
    """
    case = _readable_case(session, actor, case_id)
    masked = actor.sees_masked_pii
    view = load_view(session, case, actor, masked=masked)
    if masked:
        view.address = mask_address(view.address)

    follow_up = {name: getattr(case, name) for name in FOLLOW_UP_COLUMNS}
    follow_up["flags"] = list(case.flags or [])
    return CaseFile(
        case=view,
        follow_up=follow_up,
        payments=case_payment_rows(session=session, case_id=case.id),
        attempts=case_attempts(session, case.id, masked),
        promises=_rows(session, PROMISES_SQL, case.id),
        plans=_rows(session, PLANS_SQL, case.id),
        history=_rows(session, HISTORY_SQL, case.id),
        attachments=attachment_rows(session, case.id),
        next_step=_next_step(session, case),
        compliance_profile=case.creditor.compliance_profile,
        masked=masked,
        contact_ids=list(
            session.scalars(
                select(Contact.id)
                .where(Contact.debtor_id == case.debtor_id)
                .order_by(Contact.id)
            )
        ),
        can_write=_can_write(actor, case),
    )


def unmask(
    *,
    session: Session,
    actor: Actor,
    case_id: int,
    field: UnmaskField,
    reason: str,
) -> str | list[Any] | None:
    """Return one field of personal data in clear, for a stated reason; audited.

    `id_number` and `address` return a string, `phones` a list of numbers and
    `contacts` a list of {name, relation, phone}.
    """
    if field not in UNMASK_FIELDS:
        raise InvalidInput(
            "unmask_field_unknown", field=field, allowed=", ".join(UNMASK_FIELDS)
        )
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvalidInput("unmask_reason_short", minimum=MIN_REASON_LENGTH)
    case = _readable_case(session, actor, case_id)
    debtor = session.get(Debtor, case.debtor_id)

    value: str | list[Any] | None
    if field == "id_number":
        value = debtor.id_number
    elif field == "address":
        value = debtor.address
    elif field == "phones":
        value = list(debtor.phones or [])
    else:
        contacts = session.scalars(
            select(Contact).where(Contact.debtor_id == debtor.id).order_by(Contact.id)
        )
        value = [
            {"name": c.name, "relation": c.relation, "phone": c.phone} for c in contacts
        ]

    audit.record(
        session,
        actor,
        "pii_unmasked",
        "case",
        case.id,
        detail={"case_id": case.id, "field": field, "reason": reason},
    )
    session.commit()
    logger.info("case %s: %s unmasked by %s", case.id, field, actor.username)
    return value
