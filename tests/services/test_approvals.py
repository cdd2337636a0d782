"""Settlement and write-off requests and their approval, on PostgreSQL."""

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Approval, ApprovalRequest, AuditEntry, Notification
from recova.errors import Conflict, InvalidInput, PermissionDenied, RecovaError
from services import approvals
from services.actors import Actor
from tests.approval_helpers import (
    OverlapGate,
    add_user,
    assign,
    case_row,
    import_cases,
    import_payments,
    make_staff,
)

BIG_CASE = "GBK2411000001"  # balance 255,849.68
SMALL_CASE = "GBK2411000002"  # balance 1,018.13
LIMITS = approvals.ApprovalLimits(
    team_lead=Decimal("10000.00"), manager=Decimal("100000.00")
)


@pytest.fixture
def staff(session):
    import_cases(session)
    return make_staff(session)


def file_request(
    session,
    actor,
    case_no,
    *,
    kind="settlement",
    amount=None,
    new_balance=None,
    reason="债务人失业，一次性结清剩余部分",
):
    case_id = case_row(session, case_no).id
    return approvals.request_approval(
        session=session,
        actor=actor,
        data=approvals.NewRequest(
            case_id=case_id,
            kind=kind,
            amount=amount,
            new_balance=new_balance,
            reason=reason,
        ),
    )


def decide(session, actor, request_id, *, reject=False, reason=None, step=None):
    if step is None:
        step = (
            session.scalar(
                select(func.count()).where(Approval.request_id == request_id)
            )
            + 1
        )
    decision = approvals.Decision(request_id=request_id, step=step, reason=reason)
    service = approvals.reject if reject else approvals.approve
    return service(session=session, actor=actor, decision=decision)


def request_status(session, request_id) -> ApprovalRequest:
    session.expire_all()
    return session.get(ApprovalRequest, request_id)


# Tiers.


@pytest.mark.parametrize(
    ("amount", "level"),
    [
        ("0.01", "team_lead"),
        ("10000.00", "team_lead"),
        ("10000.01", "manager"),
        ("100000.00", "manager"),
        ("100000.01", "admin"),
    ],
)
def test_final_level_boundaries(amount, level):
    assert approvals.final_level(Decimal(amount), LIMITS) == level


@pytest.mark.parametrize(
    ("amount", "chain"),
    [
        ("10000.00", ["team_lead"]),
        ("10000.01", ["team_lead", "manager"]),
        ("100000.00", ["team_lead", "manager"]),
        ("100000.01", ["team_lead", "manager", "admin"]),
    ],
)
def test_collector_request_climbs_to_authority(staff, session, amount, chain):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(session, staff.collector, BIG_CASE, amount=Decimal(amount))
    approvers = {
        "team_lead": staff.team_lead,
        "manager": staff.manager,
        "admin": staff.admin,
    }

    for position, level in enumerate(chain):
        assert request_status(session, request.id).next_level == level
        outcome = decide(session, approvers[level], request.id)
        expected = "approved" if position == len(chain) - 1 else "pending"
        assert outcome.status == expected, level

    expected_balance = Decimal("255849.68") - Decimal(amount)
    assert case_row(session, BIG_CASE).balance == expected_balance


@pytest.mark.parametrize(
    ("amount", "chain"),
    [
        ("10000.00", ["manager"]),
        ("100000.00", ["manager"]),
        ("100000.01", ["manager", "admin"]),
    ],
)
def test_team_lead_request_starts_at_manager(staff, session, amount, chain):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(session, staff.team_lead, BIG_CASE, amount=Decimal(amount))
    approvers = {"manager": staff.manager, "admin": staff.admin}
    for level in chain:
        assert request_status(session, request.id).next_level == level
        decide(session, approvers[level], request.id)
    assert request_status(session, request.id).status == "approved"


def test_team_without_lead_starts_at_manager(staff, session):
    loner = add_user(session, "solo", "collector", "Team Solo")
    assign(session, SMALL_CASE, loner)
    request = file_request(session, loner, SMALL_CASE, amount=Decimal("18.13"))
    assert request.next_level == "manager"
    assert decide(session, staff.manager, request.id).status == "approved"


def test_admin_may_take_the_manager_step(staff, session):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("150000.00")
    )
    decide(session, staff.admin, request.id)
    outcome = decide(session, staff.other_admin, request.id)
    assert outcome.status == "approved"


# Who may decide.


def test_self_approval_refused(staff, session):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("5000.00")
    )
    lead_as_manager = add_user(session, "lead2", "manager")
    with pytest.raises(PermissionDenied) as raised:
        decide(session, staff.team_lead, request.id)
    assert raised.value.code == "approval_own_request"
    assert decide(session, lead_as_manager, request.id).status == "approved"


def test_second_approval_by_same_person_refused(staff, session):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("150000.00")
    )
    decide(session, staff.admin, request.id)
    with pytest.raises(Conflict) as raised:
        decide(session, staff.admin, request.id, step=2)
    assert raised.value.code == "approval_twice"
    assert request_status(session, request.id).status == "pending"


def test_double_click_changes_nothing(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    first = decide(session, staff.team_lead, request.id, step=1)
    second = decide(session, staff.team_lead, request.id, step=1)
    approved_entries = session.scalar(
        select(func.count()).where(AuditEntry.action == "approval_approved")
    )
    assert first.changed
    assert not second.changed
    assert second.status == "approved"
    assert case_row(session, SMALL_CASE).balance == Decimal("1000.00")
    assert session.scalar(select(func.count()).select_from(Approval)) == 1
    assert approved_entries == 1


def test_stale_step_refused(staff, session):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("150000.00")
    )
    decide(session, staff.manager, request.id)
    with pytest.raises(Conflict) as raised:
        decide(session, staff.admin, request.id, step=1)
    assert raised.value.code == "request_moved_on"


def test_decided_request_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    decide(session, staff.team_lead, request.id)
    with pytest.raises(Conflict) as raised:
        decide(session, staff.manager, request.id, step=2)
    assert raised.value.code == "request_closed"


def test_other_team_lead_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    stranger = add_user(session, "west", "team_lead", "Team West")
    with pytest.raises(PermissionDenied) as raised:
        decide(session, stranger, request.id)
    assert raised.value.code == "case_not_your_team"


def test_manager_cannot_take_team_lead_step(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    with pytest.raises(PermissionDenied) as raised:
        decide(session, staff.manager, request.id)
    assert raised.value.code == "approval_level"


def test_collector_cannot_decide(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, SMALL_CASE, amount=Decimal("18.13")
    )
    with pytest.raises(PermissionDenied):
        decide(session, staff.collector, request.id)


# Rejection.


def test_rejection_needs_reason(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    for reason in (None, "", "   "):
        with pytest.raises(InvalidInput) as raised:
            decide(session, staff.team_lead, request.id, reject=True, reason=reason)
        assert raised.value.code == "rejection_reason_required"
    assert request_status(session, request.id).status == "pending"


def test_rejection_closes_request(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    outcome = decide(
        session, staff.team_lead, request.id, reject=True, reason="缺少还款能力证明"
    )
    stored = request_status(session, request.id)
    notice = session.scalars(
        select(Notification).where(Notification.user_id == staff.collector.id)
    ).one()
    assert outcome.status == "rejected"
    assert stored.decision_reason == "缺少还款能力证明"
    assert notice.kind == "approval_rejected"
    assert case_row(session, SMALL_CASE).balance == Decimal("1018.13")


# What an approval does to the case.


def test_final_approval_moves_case_and_audits(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    before = case_row(session, SMALL_CASE)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    decide(session, staff.team_lead, request.id)
    after = case_row(session, SMALL_CASE)
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case_settlement")
    ).one()
    assert after.balance == Decimal("1000.00")
    assert after.status == "assigned"
    assert after.version == before.version + 1
    assert entry.before == {"balance": "1018.13", "status": "assigned"}
    assert entry.after == {"balance": "1000.00", "status": "assigned"}


def test_approval_is_one_transaction(staff, session, monkeypatch):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    original = approvals.audit.record

    def failing_record(session, actor, action, *args, **kwargs):
        if action == "case_settlement":
            raise RuntimeError("audit write failed")
        return original(session, actor, action, *args, **kwargs)

    monkeypatch.setattr(approvals.audit, "record", failing_record)
    with pytest.raises(RuntimeError):
        decide(session, staff.team_lead, request.id)
    session.rollback()
    assert case_row(session, SMALL_CASE).balance == Decimal("1018.13")
    assert request_status(session, request.id).status == "pending"
    assert session.scalar(select(func.count()).select_from(Approval)) == 0


def test_settlement_to_zero_settles_case(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, new_balance=Decimal("0")
    )
    decide(session, staff.team_lead, request.id)
    row = case_row(session, SMALL_CASE)
    assert row.balance == Decimal("0.00")
    assert row.status == "settled"


def test_settled_case_closes_when_rest_is_paid(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, new_balance=Decimal("1000.00")
    )
    decide(session, staff.team_lead, request.id)
    report = import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nS1,GBK2411000002,1000,"
        "2024-12-09\n".encode(),
    )
    assert report.settled == [SMALL_CASE]
    assert report.paid_in_full == []
    assert case_row(session, SMALL_CASE).status == "settled"


def test_write_off_clears_balance(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(session, staff.collector, SMALL_CASE, kind="write_off")
    decide(session, staff.team_lead, request.id)
    row = case_row(session, SMALL_CASE)
    assert request.amount == Decimal("1018.13")
    assert row.balance == Decimal("0.00")
    assert row.status == "written_off"


# Edge cases while a request waits.


def test_limit_lowered_while_waiting(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.collector, BIG_CASE, amount=Decimal("8000.00")
    )
    assert request.final_level == "team_lead"
    approvals.set_limits(
        session=session,
        actor=staff.admin,
        limits=approvals.ApprovalLimits(
            team_lead=Decimal("5000.00"), manager=Decimal("100000.00")
        ),
    )
    outcome = decide(session, staff.team_lead, request.id)
    step = session.scalars(select(Approval)).one()
    assert outcome.status == "pending"
    assert outcome.next_level == "manager"
    assert step.limit_at_decision == Decimal("5000.00")
    assert request_status(session, request.id).final_level == "manager"
    assert decide(session, staff.manager, request.id).status == "approved"


def test_request_on_case_paid_meanwhile(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nP1,GBK2411000002,1018.13,"
        "2024-12-09\n".encode(),
    )
    with pytest.raises(Conflict) as raised:
        decide(session, staff.team_lead, request.id)
    stored = request_status(session, request.id)
    notice = session.scalars(
        select(Notification).where(Notification.user_id == staff.collector.id)
    ).one()
    assert raised.value.code == "request_case_closed"
    assert stored.status == "cancelled"
    assert notice.kind == "approval_cancelled"
    assert case_row(session, SMALL_CASE).status == "paid"


def test_request_after_balance_fell_below_discount(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("900.00")
    )
    import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nP2,GBK2411000002,500,"
        "2024-12-09\n".encode(),
    )
    with pytest.raises(Conflict) as raised:
        decide(session, staff.team_lead, request.id)
    assert raised.value.code == "request_balance_changed"
    assert request_status(session, request.id).status == "cancelled"
    assert case_row(session, SMALL_CASE).balance == Decimal("518.13")


def test_discount_still_applies_after_partial_payment(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("100.00")
    )
    import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nP3,GBK2411000002,500,"
        "2024-12-09\n".encode(),
    )
    decide(session, staff.team_lead, request.id)
    assert case_row(session, SMALL_CASE).balance == Decimal("418.13")


# Filing requests.


def test_settlement_needs_one_figure(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    with pytest.raises(InvalidInput) as both:
        file_request(
            session,
            staff.collector,
            SMALL_CASE,
            amount=Decimal("1"),
            new_balance=Decimal("1000"),
        )
    with pytest.raises(InvalidInput) as neither:
        file_request(session, staff.collector, SMALL_CASE)
    assert both.value.code == "settlement_amount_or_balance"
    assert neither.value.code == "settlement_amount_or_balance"


def test_settlement_above_balance_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    with pytest.raises(InvalidInput) as raised:
        file_request(session, staff.collector, SMALL_CASE, amount=Decimal("1018.14"))
    assert raised.value.code == "settlement_out_of_range"


def test_partial_write_off_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    with pytest.raises(InvalidInput) as raised:
        file_request(
            session,
            staff.collector,
            SMALL_CASE,
            kind="write_off",
            amount=Decimal("500.00"),
        )
    assert raised.value.code == "write_off_not_balance"


def test_second_pending_request_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    file_request(session, staff.collector, SMALL_CASE, amount=Decimal("10.00"))
    with pytest.raises(Conflict) as raised:
        file_request(session, staff.collector, SMALL_CASE, amount=Decimal("20.00"))
    assert raised.value.code == "request_pending_exists"


def test_request_on_closed_case_refused(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nP4,GBK2411000002,1018.13,"
        "2024-12-09\n".encode(),
    )
    with pytest.raises(InvalidInput) as raised:
        file_request(session, staff.collector, SMALL_CASE, amount=Decimal("1.00"))
    assert raised.value.code == "request_case_not_open"


def test_collector_cannot_request_on_others_case(staff, session):
    other = add_user(session, "otto", "collector", "Team East")
    assign(session, SMALL_CASE, other)
    with pytest.raises(PermissionDenied):
        file_request(session, staff.collector, SMALL_CASE, amount=Decimal("1.00"))


def test_finance_cannot_request(staff, session):
    with pytest.raises(PermissionDenied):
        file_request(session, staff.finance, SMALL_CASE, amount=Decimal("1.00"))


def test_request_audited(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("18.13")
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "approval_requested")
    ).one()
    assert entry.entity_id == str(request.id)
    assert entry.actor_id == staff.collector.id
    assert entry.detail["case_no"] == SMALL_CASE


# Notifications and lists.


def test_next_approvers_notified(staff, session):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.collector, BIG_CASE, amount=Decimal("20000.00")
    )
    lead_notes = approvals.list_notifications(session=session, actor=staff.team_lead)
    assert [note.kind for note in lead_notes] == ["approval_waiting"]
    assert approvals.list_notifications(session=session, actor=staff.manager) == []

    decide(session, staff.team_lead, request.id)
    for manager in (staff.manager, staff.other_manager):
        notes = approvals.list_notifications(session=session, actor=manager)
        assert [note.kind for note in notes] == ["approval_waiting"], manager.username

    decide(session, staff.manager, request.id)
    mine = approvals.list_notifications(session=session, actor=staff.collector)
    assert [note.kind for note in mine] == ["approval_approved"]
    assert (
        approvals.mark_read(
            session=session,
            actor=staff.collector,
            notification_ids=[note.id for note in mine],
        )
        == 1
    )
    assert approvals.list_notifications(session=session, actor=staff.collector) == []


def test_pending_lists_by_level(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    assign(session, BIG_CASE, staff.collector)
    small = file_request(session, staff.collector, SMALL_CASE, amount=Decimal("1"))
    big = file_request(session, staff.team_lead, BIG_CASE, amount=Decimal("20000"))
    stranger = add_user(session, "west", "team_lead", "Team West")

    def pending(actor):
        return [
            row["id"] for row in approvals.list_pending(session=session, actor=actor)
        ]

    assert pending(staff.team_lead) == [small.id]
    assert pending(stranger) == []
    assert pending(staff.manager) == [big.id]
    assert pending(staff.admin) == [big.id]


def test_detail_shows_case_history(staff, session):
    assign(session, SMALL_CASE, staff.collector)
    import_payments(
        session,
        "还款流水号,案件编号,还款金额,还款日期\nH1,GBK2411000002,18.13,"
        "2024-12-09\n".encode(),
    )
    request = file_request(
        session, staff.collector, SMALL_CASE, amount=Decimal("100.00")
    )
    detail = approvals.request_detail(
        session=session, actor=staff.team_lead, request_id=request.id
    )
    assert [payment["transaction_id"] for payment in detail["payments"]] == ["H1"]
    assert "approval_requested" in [entry["action"] for entry in detail["history"]]
    assert detail["step"] == 1


# Authority limits as settings.


def test_limits_default(session):
    limits = approvals.get_limits(session=session)
    assert limits.team_lead == Decimal("10000.00")
    assert limits.manager == Decimal("100000.00")


def test_limits_change_audited(staff, session):
    approvals.set_limits(
        session=session,
        actor=staff.admin,
        limits=approvals.ApprovalLimits(
            team_lead=Decimal("8000"), manager=Decimal("80000")
        ),
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "setting_changed")
    ).one()
    assert approvals.get_limits(session=session).team_lead == Decimal("8000.00")
    assert entry.before == {"team_lead": "10000.00", "manager": "100000.00"}
    assert entry.after == {"team_lead": "8000.00", "manager": "80000.00"}


def test_limits_only_admin(staff, session):
    with pytest.raises(PermissionDenied):
        approvals.set_limits(session=session, actor=staff.manager, limits=LIMITS)


def test_limits_out_of_order(staff, session):
    with pytest.raises(InvalidInput) as raised:
        approvals.set_limits(
            session=session,
            actor=staff.admin,
            limits=approvals.ApprovalLimits(
                team_lead=Decimal("50000"), manager=Decimal("20000")
            ),
        )
    assert raised.value.code == "limits_out_of_order"


# Two approvers at once.


def race(engine, actors, request_id, step):
    """Run one approval per actor in its own session at the same moment."""
    barrier = threading.Barrier(len(actors))
    gate = OverlapGate(engine)
    outcomes, errors = [], []

    def run(actor: Actor) -> None:
        with Session(engine, expire_on_commit=False) as own:
            gate.watch(own)
            barrier.wait()
            try:
                outcomes.append(
                    approvals.approve(
                        session=own,
                        actor=actor,
                        decision=approvals.Decision(request_id=request_id, step=step),
                    )
                )
            except RecovaError as error:
                errors.append(error)

    threads = [threading.Thread(target=run, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes, errors


def test_concurrent_approvals_apply_once(staff, session, engine):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("50000.00")
    )
    outcomes, errors = race(
        engine, [staff.manager, staff.other_manager], request.id, step=1
    )
    assert [outcome.status for outcome in outcomes] == ["approved"]
    assert [error.code for error in errors] in (
        ["request_closed"],
        ["request_moved_on"],
    )
    assert session.scalar(select(func.count()).select_from(Approval)) == 1
    assert case_row(session, BIG_CASE).balance == Decimal("205849.68")


def test_concurrent_double_click_applies_once(staff, session, engine):
    assign(session, BIG_CASE, staff.collector)
    request = file_request(
        session, staff.team_lead, BIG_CASE, amount=Decimal("50000.00")
    )
    outcomes, errors = race(engine, [staff.manager, staff.manager], request.id, step=1)
    assert errors == []
    assert sorted(outcome.changed for outcome in outcomes) == [False, True]
    assert session.scalar(select(func.count()).select_from(Approval)) == 1
    assert case_row(session, BIG_CASE).balance == Decimal("205849.68")
