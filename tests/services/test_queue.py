"""My queue on real PostgreSQL: tier order, ties, paging, counters and scoping."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from db.models import Case
from recova.errors import InvalidInput, PermissionDenied
from services.queue import QueueFilter, my_queue, next_case_id
from tests.case_factories import make_batch, make_case, make_collector
from tests.factories import make_user

ZONE = ZoneInfo("Asia/Shanghai")
# A fixed moment in the morning, so "today" and "4 hours from now" never cross
# midnight while a test runs.
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=ZONE)


def queued_case(session, batch, collector, case_no, **columns) -> Case:
    """Add a case in `collector`'s queue with the given follow-up columns."""
    case = make_case(
        session,
        batch,
        case_no,
        total_due=columns.pop("total_due", "1000.00"),
        risk_grade=columns.pop("risk_grade", None),
    )
    case.status = columns.pop("status", "in_progress")
    case.collector_id = collector.id
    case.team_id = collector.team_id
    case.assigned_at = NOW - timedelta(days=5)
    case.first_contact_at = columns.pop("first_contact_at", NOW - timedelta(days=4))
    for name, value in columns.items():
        setattr(case, name, value)
    session.flush()
    return case


def case_nos(page) -> list[str]:
    return [row["case_no"] for row in page.rows]


def read(session, actor, **filters):
    return my_queue(
        session=session, actor=actor, filters=QueueFilter(**filters), now=NOW
    )


@pytest.fixture
def ann(session):
    return make_collector(session, "ann", team="North")


def test_queue_orders_tiers(session, ann):
    batch = make_batch(session)
    queued_case(session, batch, ann, "LATER", next_action_at=NOW + timedelta(hours=2))
    queued_case(session, batch, ann, "PAST", next_action_at=NOW - timedelta(days=2))
    queued_case(
        session,
        batch,
        ann,
        "PROMISE",
        promise_due_on=NOW.date(),
        next_action_at=NOW - timedelta(days=3),
    )
    queued_case(
        session,
        batch,
        ann,
        "FIRST",
        first_contact_at=None,
        first_contact_due_at=NOW + timedelta(hours=3),
        next_action_at=NOW + timedelta(days=1),
    )
    queued_case(
        session,
        batch,
        ann,
        "FIRST_LATER",
        first_contact_at=None,
        first_contact_due_at=NOW + timedelta(hours=5),
        next_action_at=NOW + timedelta(days=1, hours=1),
    )
    queued_case(
        session,
        batch,
        ann,
        "BROKEN",
        promise_broken_at=NOW - timedelta(hours=8),
        last_attempt_at=NOW - timedelta(days=2),
        next_action_at=NOW + timedelta(days=3),
    )
    queued_case(
        session,
        batch,
        ann,
        "BROKEN_WORKED",
        promise_broken_at=NOW - timedelta(hours=8),
        last_attempt_at=NOW - timedelta(hours=1),
        next_action_at=NOW + timedelta(days=2),
    )
    queued_case(session, batch, ann, "NO_ACTION")
    session.commit()

    page = read(session, ann)

    assert case_nos(page) == [
        "BROKEN",
        "FIRST",
        "PROMISE",
        "PAST",
        "LATER",
        "FIRST_LATER",
        "BROKEN_WORKED",
        "NO_ACTION",
    ]
    reasons = {row["case_no"]: row["reason"] for row in page.rows}
    assert reasons["BROKEN"] == "broken_promise"
    assert reasons["FIRST"] == "first_contact_due"
    assert reasons["PROMISE"] == "promise_today"
    assert reasons["PAST"] == "overdue"
    assert reasons["LATER"] == "scheduled"
    assert reasons["NO_ACTION"] == "no_next_action"
    assert page.total == 8


def test_ties_go_to_grade_then_balance(session, ann):
    batch = make_batch(session)
    due = NOW - timedelta(hours=1)
    queued_case(session, batch, ann, "C_SMALL", risk_grade="C", next_action_at=due)
    queued_case(
        session,
        batch,
        ann,
        "A_SMALL",
        risk_grade="A",
        next_action_at=due,
        total_due="500.00",
    )
    queued_case(
        session,
        batch,
        ann,
        "A_BIG",
        risk_grade="A",
        next_action_at=due,
        total_due="9000.00",
    )
    queued_case(session, batch, ann, "NO_GRADE", next_action_at=due)
    session.commit()

    assert case_nos(read(session, ann)) == ["A_BIG", "A_SMALL", "C_SMALL", "NO_GRADE"]


def test_paging_continues_across_tiers(session, ann):
    batch = make_batch(session)
    for number in range(3):
        queued_case(
            session,
            batch,
            ann,
            f"B{number}",
            promise_broken_at=NOW - timedelta(hours=10 - number),
        )
    for number in range(4):
        queued_case(
            session,
            batch,
            ann,
            f"N{number}",
            next_action_at=NOW + timedelta(hours=number),
        )
    session.commit()

    pages = [case_nos(read(session, ann, page=n, page_size=3)) for n in (1, 2, 3)]

    assert pages == [["B0", "B1", "B2"], ["N0", "N1", "N2"], ["N3"]]


def test_counters(session, ann):
    batch = make_batch(session)
    yesterday = NOW - timedelta(days=1)
    queued_case(session, batch, ann, "OLD", next_action_at=yesterday)
    queued_case(session, batch, ann, "NOW", next_action_at=NOW - timedelta(minutes=5))
    queued_case(session, batch, ann, "LATER", next_action_at=NOW + timedelta(hours=1))
    queued_case(session, batch, ann, "PTP", promise_due_on=NOW.date())
    queued_case(
        session,
        batch,
        ann,
        "PTP_TOMORROW",
        promise_due_on=NOW.date() + timedelta(days=1),
    )
    queued_case(session, batch, ann, "BROKEN", promise_broken_at=yesterday)
    queued_case(
        session,
        batch,
        ann,
        "FIRST",
        first_contact_at=None,
        first_contact_due_at=NOW + timedelta(hours=1),
    )
    queued_case(
        session,
        batch,
        ann,
        "PAUSED",
        status="paused",
        next_action_at=yesterday,
        promise_broken_at=yesterday,
    )
    session.commit()

    counters = read(session, ann).counters

    assert counters.due_now == 2
    assert counters.overdue == 1
    assert counters.promises_today == 1
    assert counters.broken == 1
    assert counters.first_contact_due == 1


def test_due_filters_match_counters(session, ann):
    batch = make_batch(session)
    queued_case(session, batch, ann, "OLD", next_action_at=NOW - timedelta(days=1))
    queued_case(session, batch, ann, "NOW", next_action_at=NOW - timedelta(minutes=5))
    queued_case(session, batch, ann, "LATER", next_action_at=NOW + timedelta(hours=1))
    queued_case(session, batch, ann, "PTP", promise_due_on=NOW.date())
    queued_case(
        session, batch, ann, "BROKEN", promise_broken_at=NOW - timedelta(days=1)
    )
    session.commit()

    assert case_nos(read(session, ann, due="due_now")) == ["OLD", "NOW"]
    assert case_nos(read(session, ann, due="overdue")) == ["OLD"]
    assert case_nos(read(session, ann, due="promises_today")) == ["PTP"]
    assert case_nos(read(session, ann, due="broken")) == ["BROKEN"]
    assert read(session, ann, due="due_now").total == 2


def test_filters_and_search(session, ann):
    batch = make_batch(session)
    queued_case(session, batch, ann, "K100", risk_grade="A", segment="heavy")
    queued_case(session, batch, ann, "K200", risk_grade="B", segment="light")
    session.commit()

    assert case_nos(read(session, ann, grade="a")) == ["K100"]
    assert case_nos(read(session, ann, segment="light")) == ["K200"]
    assert case_nos(read(session, ann, search="K2")) == ["K200"]
    assert case_nos(read(session, ann, search="Debtor K1")) == ["K100"]


def test_paused_and_closed_cases_leave_queue(session, ann):
    batch = make_batch(session)
    queued_case(session, batch, ann, "OPEN")
    queued_case(session, batch, ann, "PAUSED", status="paused")
    queued_case(session, batch, ann, "PAID", status="paid")
    session.commit()

    assert case_nos(read(session, ann)) == ["OPEN"]


def test_collector_sees_only_own_queue(session, ann):
    bob = make_collector(session, "bob", team="North")
    batch = make_batch(session)
    queued_case(session, batch, ann, "ANN1")
    queued_case(session, batch, bob, "BOB1")
    session.commit()

    assert case_nos(read(session, ann)) == ["ANN1"]
    with pytest.raises(PermissionDenied):
        read(session, ann, collector_id=bob.id)


def test_team_lead_reads_team_queue(session, ann):
    bob = make_collector(session, "bob", team="North")
    sue = make_collector(session, "sue", team="South")
    lead = make_user(session, "lena", role="team_lead", team="North")
    batch = make_batch(session)
    queued_case(session, batch, ann, "ANN1", next_action_at=NOW - timedelta(hours=1))
    queued_case(session, batch, bob, "BOB1", next_action_at=NOW - timedelta(hours=2))
    queued_case(session, batch, sue, "SUE1")
    session.commit()

    assert case_nos(read(session, lead)) == ["BOB1", "ANN1"]
    assert case_nos(read(session, lead, collector_id=ann.id)) == ["ANN1"]
    with pytest.raises(PermissionDenied):
        read(session, lead, collector_id=sue.id)


def test_manager_names_collector(session, ann):
    manager = make_user(session, "max", role="manager")
    batch = make_batch(session)
    queued_case(session, batch, ann, "ANN1")
    session.commit()

    assert case_nos(read(session, manager, collector_id=ann.id)) == ["ANN1"]
    with pytest.raises(InvalidInput):
        read(session, manager)


def test_finance_has_no_queue(session, ann):
    finance = make_user(session, "fay", role="finance")
    with pytest.raises(PermissionDenied):
        read(session, finance, collector_id=ann.id)


def test_next_case_is_top_row(session, ann):
    batch = make_batch(session)
    queued_case(session, batch, ann, "LATER", next_action_at=NOW + timedelta(days=1))
    top = queued_case(session, batch, ann, "BROKEN", promise_broken_at=NOW)
    session.commit()

    assert next_case_id(session=session, actor=ann) == top.id
    assert session.scalar(select(Case.case_no).where(Case.id == top.id)) == "BROKEN"
