"""Promises and plans judged against payments at the day boundaries, on PostgreSQL."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from db.models import Notification
from db.models_followup import InstallmentPlan, Promise
from recova.errors import InvalidInput, PermissionDenied
from services import payments
from services.promises import (
    Installment,
    PlanInput,
    PromiseInput,
    cancel_promise,
    create_plan,
    create_promise,
    evaluate_promises,
)
from services.segments import local_today
from tests.factories import make_user
from tests.followup_factories import pay, reload, seed_builtins, setup_case


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def backdate(session, promise: Promise, made: date, due: date) -> None:
    """Move a promise into the past: made on `made`, due on `due`."""
    session.execute(
        text(
            "UPDATE promises SET created_at = CAST(:made AS date) + time '10:00'"
            " AT TIME ZONE 'Asia/Shanghai', due_on = :due WHERE id = :id"
        ),
        {"made": made, "due": due, "id": promise.id},
    )
    session.commit()
    session.refresh(promise)


@pytest.fixture
def promised(session):
    """A promise of 500.00 made 10 days ago, due 5 days ago."""
    case, amy = setup_case(session)
    today = local_today()
    promise = create_promise(
        session=session,
        actor=amy,
        data=PromiseInput(case_id=case.id, amount=Decimal("500.00"), due_on=today),
    )
    due = today - timedelta(days=5)
    backdate(session, promise, today - timedelta(days=10), due)
    return case, promise, due


def status(session, promise) -> str:
    session.refresh(promise)
    return promise.status


def test_promise_marks_the_case_promised(session, promised):
    case, promise, due = promised
    case = reload(session, case)
    assert (case.status, promise.status) == ("promised", "pending")


def test_promise_is_pending_until_the_grace_days_pass(session, promised):
    case, promise, due = promised
    evaluate_promises(session=session, as_of=due + timedelta(days=2))
    assert status(session, promise) == "pending"


def test_promise_without_payment_breaks_on_the_third_day(session, promised):
    case, promise, due = promised
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "broken"
    case = reload(session, case)
    assert case.promise_broken_at is not None
    assert case.status == "in_progress"


def test_payment_on_the_last_grace_day_keeps_the_promise(session, promised):
    case, promise, due = promised
    pay(session, case, "500.00", due + timedelta(days=2))
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "kept"


def test_payment_a_day_after_the_grace_days_does_not_count(session, promised):
    case, promise, due = promised
    pay(session, case, "500.00", due + timedelta(days=3))
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "broken"


def test_payment_before_the_promise_was_made_does_not_count(session, promised):
    case, promise, due = promised
    pay(session, case, "500.00", due - timedelta(days=6))
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "broken"


def test_some_money_makes_it_partly_kept(session, promised):
    case, promise, due = promised
    pay(session, case, "200.00", due)
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "partly_kept"
    assert promise.paid_amount == Decimal("200.00")


def test_promise_is_kept_as_soon_as_the_amount_arrives(session, promised):
    case, promise, due = promised
    pay(session, case, "300.00", due - timedelta(days=1))
    pay(session, case, "200.00", due)
    evaluate_promises(session=session, as_of=due)
    assert status(session, promise) == "kept"


def test_reversed_payment_does_not_count(session, promised):
    case, promise, due = promised
    original = pay(session, case, "500.00", due)
    pay(session, case, "-500.00", due + timedelta(days=1), reverses=original)
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    assert status(session, promise) == "broken"


def test_evaluating_twice_changes_nothing(session, promised):
    case, promise, due = promised
    as_of = due + timedelta(days=3)
    evaluate_promises(session=session, as_of=as_of)
    before = reload(session, case)
    state = (before.version, before.promise_broken_at, before.status)
    notes = session.scalar(select(func.count()).select_from(Notification))
    evaluate_promises(session=session, as_of=as_of)
    after = reload(session, case)
    assert (after.version, after.promise_broken_at, after.status) == state
    assert session.scalar(select(func.count()).select_from(Notification)) == notes


def test_broken_promise_tells_the_collector(session, promised):
    case, promise, due = promised
    evaluate_promises(session=session, as_of=due + timedelta(days=3))
    note = session.scalars(select(Notification)).one()
    assert (note.kind, note.user_id) == ("promise_broken", case.collector_id)


def test_payments_go_to_the_earliest_due_promise_first(session, promised):
    case, first, due = promised
    amy = make_user(session, "max", role="manager")
    second = create_promise(
        session=session,
        actor=amy,
        data=PromiseInput(
            case_id=case.id, amount=Decimal("400.00"), due_on=local_today()
        ),
    )
    backdate(session, second, due - timedelta(days=4), due + timedelta(days=1))
    pay(session, case, "600.00", due)
    evaluate_promises(session=session, as_of=due + timedelta(days=4))
    assert status(session, first) == "kept"
    assert status(session, second) == "partly_kept"
    assert second.paid_amount == Decimal("100.00")


def test_posting_a_payment_judges_the_promise_at_once(session):
    case, amy = setup_case(session)
    promise = create_promise(
        session=session,
        actor=amy,
        data=PromiseInput(
            case_id=case.id, amount=Decimal("500.00"), due_on=local_today()
        ),
    )
    # The payment service dates by the server's clock, which may still be on the
    # day before Shanghai's.
    paid_on = date.today()
    backdate(session, promise, paid_on - timedelta(days=1), local_today())
    finance = make_user(session, "fin", role="finance")
    payments.post_payment(
        session=session,
        actor=finance,
        data=payments.ManualPayment(
            creditor=case.creditor.name,
            case_no=case.case_no,
            transaction_id="TX-1",
            amount=Decimal("500.00"),
            paid_on=paid_on,
            evidence="bank slip",
        ),
    )
    assert status(session, promise) == "kept"
    assert reload(session, case).status == "in_progress"


# Creating, plans, cancelling.


def test_promise_above_the_balance_is_refused(session):
    case, amy = setup_case(session, balance="1000.00")
    with pytest.raises(InvalidInput) as caught:
        create_promise(
            session=session,
            actor=amy,
            data=PromiseInput(
                case_id=case.id, amount=Decimal("1000.01"), due_on=local_today()
            ),
        )
    assert caught.value.code == "promise_over_balance"


def test_promise_due_in_the_past_is_refused(session):
    case, amy = setup_case(session)
    with pytest.raises(InvalidInput):
        create_promise(
            session=session,
            actor=amy,
            data=PromiseInput(
                case_id=case.id,
                amount=Decimal("10.00"),
                due_on=local_today() - timedelta(days=1),
            ),
        )


def test_collector_may_not_promise_on_another_collectors_case(session):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector")
    with pytest.raises(PermissionDenied):
        create_promise(
            session=session,
            actor=bob,
            data=PromiseInput(
                case_id=case.id, amount=Decimal("10.00"), due_on=local_today()
            ),
        )


def plan_of(case, *items) -> PlanInput:
    today = local_today()
    return PlanInput(
        case_id=case.id,
        installments=[
            Installment(amount=Decimal(amount), due_on=today + timedelta(days=days))
            for amount, days in items
        ],
    )


def test_plan_creates_one_promise_per_installment(session):
    case, amy = setup_case(session, balance="1000.00")
    plan = create_plan(
        session=session, actor=amy, data=plan_of(case, ("400", 0), ("600", 30))
    )
    amounts = session.scalars(
        select(Promise.amount).where(Promise.plan_id == plan.id).order_by(Promise.id)
    ).all()
    assert amounts == [Decimal("400.00"), Decimal("600.00")]
    assert reload(session, case).promise_due_on == local_today()


def test_plan_over_the_balance_is_refused(session):
    case, amy = setup_case(session, balance="1000.00")
    with pytest.raises(InvalidInput) as caught:
        create_plan(
            session=session, actor=amy, data=plan_of(case, ("600", 0), ("600", 30))
        )
    assert caught.value.code == "plan_over_balance"


def test_plan_dates_must_increase(session):
    case, amy = setup_case(session)
    with pytest.raises(InvalidInput) as caught:
        create_plan(
            session=session, actor=amy, data=plan_of(case, ("100", 5), ("100", 5))
        )
    assert caught.value.code == "plan_dates_not_increasing"


def test_plan_breaks_when_an_installment_breaks(session):
    case, amy = setup_case(session, balance="1000.00")
    plan = create_plan(
        session=session, actor=amy, data=plan_of(case, ("400", 0), ("600", 30))
    )
    first = session.scalars(
        select(Promise).where(Promise.plan_id == plan.id).order_by(Promise.due_on)
    ).first()
    evaluate_promises(session=session, as_of=first.due_on + timedelta(days=3))
    session.refresh(plan)
    assert plan.status == "broken"


def test_plan_completes_when_every_installment_is_kept(session):
    case, amy = setup_case(session, balance="1000.00")
    plan = create_plan(
        session=session, actor=amy, data=plan_of(case, ("400", 0), ("600", 30))
    )
    pay(session, case, "1000.00", local_today())
    evaluate_promises(session=session, as_of=local_today())
    session.refresh(plan)
    assert plan.status == "completed"
    assert reload(session, case).status == "in_progress"


def test_cancelling_an_installment_cancels_the_plan(session):
    case, amy = setup_case(session, balance="1000.00")
    plan = create_plan(
        session=session, actor=amy, data=plan_of(case, ("400", 0), ("600", 30))
    )
    first = session.scalars(select(Promise).where(Promise.plan_id == plan.id)).first()
    cancel_promise(session=session, actor=amy, promise_id=first.id, reason="re-agreed")
    assert session.get(InstallmentPlan, plan.id).status == "cancelled"
    statuses = set(session.scalars(select(Promise.status)))
    assert statuses == {"cancelled"}
    case = reload(session, case)
    assert (case.status, case.promise_due_on) == ("in_progress", None)
