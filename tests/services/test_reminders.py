"""Reminders and the daily digest, on PostgreSQL."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from db.models import Notification
from recova.errors import PermissionDenied
from services.promises import PromiseInput, create_promise
from services.reminders import mask_name, reminders_for, send_daily_digest
from services.segments import local_today
from tests.factories import make_user
from tests.followup_factories import another_case, seed_builtins, setup_case, team_lead


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def kinds(items):
    return sorted((item.kind, item.case_no) for item in items)


def test_new_case_due_for_first_contact_and_idle(session):
    case, amy = setup_case(session)
    items = reminders_for(session=session, actor=amy)
    assert kinds(items) == [("first_contact_due", "C-1"), ("idle", "C-1")]
    assert items[0].detail == "overdue"


def test_first_contact_due_later_than_four_hours_is_not_listed(session):
    now = datetime.now(UTC)
    case, amy = setup_case(session, assigned_at=now)
    case.first_contact_due_at = now + timedelta(hours=5)
    session.commit()
    assert reminders_for(session=session, actor=amy) == []
    case.first_contact_due_at = now + timedelta(hours=3)
    session.commit()
    assert kinds(reminders_for(session=session, actor=amy)) == [
        ("first_contact_due", "C-1")
    ]


def test_promise_due_today_and_broken_promise(session):
    now = datetime.now(UTC)
    case, amy = setup_case(session, assigned_at=now)
    case.first_contact_at = now
    session.commit()
    create_promise(
        session=session,
        actor=amy,
        data=PromiseInput(case_id=case.id, amount=Decimal("100"), due_on=local_today()),
    )
    case.promise_broken_at = now
    session.commit()
    assert kinds(reminders_for(session=session, actor=amy)) == [
        ("promise_broken", "C-1"),
        ("promise_due", "C-1"),
    ]


def test_team_lead_sees_the_team_and_collector_only_their_own(session):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector", team="north")
    another_case(session, case, "C-2", bob)
    lena = team_lead(session)
    assert {i.case_no for i in reminders_for(session=session, actor=lena)} == {
        "C-1",
        "C-2",
    }
    assert {i.case_no for i in reminders_for(session=session, actor=amy)} == {"C-1"}
    with pytest.raises(PermissionDenied):
        reminders_for(session=session, actor=amy, user_id=bob.id)


def test_debtor_name_is_masked():
    assert mask_name("张三丰") == "张**"


def test_daily_digest_is_written_once_a_day(session):
    case, amy = setup_case(session)
    lena = team_lead(session)
    day = local_today()
    assert send_daily_digest(session=session, day=day) == 2
    assert send_daily_digest(session=session, day=day) == 0
    notes = session.scalars(select(Notification).order_by(Notification.user_id)).all()
    assert [(n.user_id, n.params["idle"]) for n in notes] == [(amy.id, 1), (lena.id, 1)]
    assert session.scalar(select(func.count()).select_from(Notification)) == 2
