"""Recording contact attempts: case updates, strategy advance, escalation, roles and
concurrent edits, on PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, Notification
from db.models_followup import ContactAttempt, Promise
from recova.errors import Conflict, InvalidInput, PermissionDenied
from services.contacts import list_attempts, next_step_day, record_attempt
from services.segments import DEFAULT_STRATEGIES
from tests.factories import make_user
from tests.followup_factories import (
    SHANGHAI,
    attempt,
    local,
    reload,
    seed_builtins,
    setup_case,
    team_lead,
)


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def test_attempt_moves_the_case_on(session):
    case, amy = setup_case(session)
    seen = case.version
    at = local(SHANGHAI, 1, 10)
    data = attempt(case, result_code="callback", recording_ref="r1", at=at)
    result = record_attempt(session=session, actor=amy, data=data)
    case = reload(session, case)
    assert case.status == "in_progress"
    assert (case.last_attempt_at, case.last_connected_at) == (at, at)
    assert (case.first_contact_at, case.attempt_count) == (at, 1)
    assert result.case_version == case.version == seen + 1


def test_attempt_copies_connected_and_right_party_from_its_code(session):
    case, amy = setup_case(session)
    data = attempt(case, result_code="third_party", at=local(SHANGHAI, 1, 10))
    record_attempt(session=session, actor=amy, data=data)
    row = session.scalars(select(ContactAttempt)).one()
    assert (row.connected, row.right_party, row.collector_id) == (True, False, amy.id)


def test_unanswered_attempt_leaves_last_connected_empty(session):
    case, amy = setup_case(session)
    record_attempt(
        session=session, actor=amy, data=attempt(case, at=local(SHANGHAI, 1, 10))
    )
    assert reload(session, case).last_connected_at is None


def test_dispute_result_flags_the_case_and_disputes_it(session):
    case, amy = setup_case(session)
    data = attempt(
        case, result_code="dispute", recording_ref="r", at=local(SHANGHAI, 1, 9)
    )
    record_attempt(session=session, actor=amy, data=data)
    case = reload(session, case)
    assert (case.status, case.flags) == ("disputed", ["dispute"])


def test_next_follow_up_given_sets_next_action(session):
    case, amy = setup_case(session)
    follow_up = datetime.now(UTC) + timedelta(days=2)
    data = attempt(case, at=local(SHANGHAI, 1, 10), next_follow_up_at=follow_up)
    result = record_attempt(session=session, actor=amy, data=data)
    assert result.next_action_at == follow_up


def test_standard_strategy_advances_to_its_next_step(session):
    at = local(SHANGHAI, 1, 10)
    assigned = at - timedelta(days=5, hours=2)
    case, amy = setup_case(session, assigned_at=assigned)
    # Day 5 of the standard strategy: calls every 2 days from day 2, so day 6 next.
    result = record_attempt(session=session, actor=amy, data=attempt(case, at=at))
    assert result.next_action_at == assigned + timedelta(days=6)


def test_strategy_without_steps_left_comes_back_in_three_days(session):
    at = local(SHANGHAI, 1, 10)
    case, amy = setup_case(
        session, strategy="heavy", assigned_at=at - timedelta(days=9)
    )
    result = record_attempt(session=session, actor=amy, data=attempt(case, at=at))
    assert result.next_action_at == at + timedelta(days=3)


def test_light_strategy_on_day_0_goes_to_day_3(session):
    at = local(SHANGHAI, 1, 10)
    assigned = at - timedelta(hours=2)
    case, amy = setup_case(session, strategy="light", assigned_at=assigned)
    data = attempt(case, channel="sms", result_code="sent", at=at)
    result = record_attempt(session=session, actor=amy, data=data)
    assert result.next_action_at == assigned + timedelta(days=3)


def test_next_step_day_matches_the_sql_function(session):
    steps = DEFAULT_STRATEGIES["standard"].steps
    from sqlalchemy import text

    for elapsed in range(0, 30):
        sql = session.scalar(
            text("SELECT recova_next_step_day(CAST(:steps AS jsonb), :elapsed)"),
            {
                "steps": "[" + ",".join(s.model_dump_json() for s in steps) + "]",
                "elapsed": elapsed,
            },
        )
        assert next_step_day(steps, elapsed) == sql


def test_attempt_with_promise_creates_it_and_marks_the_case(session):
    case, amy = setup_case(session)
    due = datetime.now(SHANGHAI).date() + timedelta(days=3)
    data = attempt(
        case,
        result_code="promise",
        recording_ref="r",
        at=local(SHANGHAI, 1, 10),
        promise_amount=Decimal("300.00"),
        promise_due_on=due,
    )
    result = record_attempt(session=session, actor=amy, data=data)
    promise = session.get(Promise, result.promise_id)
    assert (promise.amount, promise.attempt_id) == (
        Decimal("300.00"),
        result.attempt_id,
    )
    case = reload(session, case)
    assert (case.status, case.promise_due_on) == ("promised", due)


def test_escalation_tells_the_team_lead_once(session):
    assigned = datetime.now(UTC) - timedelta(days=15)
    case, amy = setup_case(session, assigned_at=assigned)
    lena = team_lead(session)
    # Standard strategy, day 14: contacts, escalated with no right-party contact.
    for hours in (0, 1):
        data = attempt(case, at=local(SHANGHAI, 0, 8) - timedelta(hours=12 - hours))
        record_attempt(session=session, actor=amy, data=data)
    notes = session.scalars(
        select(Notification).where(Notification.kind == "case_escalated")
    ).all()
    assert [(n.user_id, n.params["condition"]) for n in notes] == [
        (lena.id, "no_right_party")
    ]


def test_audit_entry_written_with_the_attempt(session):
    case, amy = setup_case(session)
    record_attempt(
        session=session, actor=amy, data=attempt(case, at=local(SHANGHAI, 1, 10))
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "contact_recorded")
    ).one()
    assert entry.detail["case_id"] == case.id
    assert entry.before["status"] == "assigned"
    assert entry.after["status"] == "in_progress"


# Roles and ownership.


def test_collector_may_not_record_on_another_collectors_case(session):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector", team="north")
    with pytest.raises(PermissionDenied):
        record_attempt(
            session=session, actor=bob, data=attempt(case, at=local(SHANGHAI, 1, 10))
        )
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 0


def test_team_lead_of_another_team_is_refused(session):
    case, amy = setup_case(session)
    other = team_lead(session, "olga", team="south")
    with pytest.raises(PermissionDenied):
        record_attempt(
            session=session, actor=other, data=attempt(case, at=local(SHANGHAI, 1, 10))
        )


@pytest.mark.parametrize("role", ["finance", "auditor"])
def test_finance_and_auditors_may_not_record(session, role):
    case, amy = setup_case(session)
    user = make_user(session, "fay", role=role)
    with pytest.raises(PermissionDenied):
        record_attempt(
            session=session, actor=user, data=attempt(case, at=local(SHANGHAI, 1, 10))
        )


def test_manager_records_on_any_case(session):
    case, amy = setup_case(session)
    boss = make_user(session, "max", role="manager")
    data = attempt(case, at=local(SHANGHAI, 1, 10))
    assert record_attempt(session=session, actor=boss, data=data).attempt_id


def test_collector_lists_attempts_with_masked_numbers(session):
    case, amy = setup_case(session)
    data = attempt(case, target_address="13812345678", at=local(SHANGHAI, 1, 10))
    record_attempt(session=session, actor=amy, data=data)
    rows = list_attempts(session=session, actor=amy, case_id=case.id)
    assert [row.target_address for row in rows] == ["138****5678"]
    boss = make_user(session, "max", role="manager")
    rows = list_attempts(session=session, actor=boss, case_id=case.id)
    assert rows[0].target_address == "13812345678"


# Input checks.


def test_attempt_in_the_future_is_refused(session):
    case, amy = setup_case(session)
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(InvalidInput) as caught:
        record_attempt(session=session, actor=amy, data=attempt(case, at=later))
    assert caught.value.code == "attempt_in_future"


def test_unknown_result_code_lists_the_valid_ones(session):
    case, amy = setup_case(session)
    with pytest.raises(InvalidInput) as caught:
        record_attempt(
            session=session, actor=amy, data=attempt(case, result_code="maybe")
        )
    assert "no_answer" in caught.value.params["allowed"]


# Versions and concurrency.


def test_stale_version_conflicts_naming_who_changed_it(session):
    case, amy = setup_case(session)
    boss = make_user(session, "max", role="manager")
    seen = case.version
    record_attempt(
        session=session,
        actor=boss,
        data=attempt(case, expected_version=seen, at=local(SHANGHAI, 1, 10)),
    )
    with pytest.raises(Conflict) as caught:
        record_attempt(
            session=session,
            actor=amy,
            data=attempt(case, expected_version=seen, at=local(SHANGHAI, 1, 11)),
        )
    assert caught.value.params["by"] == "max"
    assert "max" in caught.value.message("en")


def test_two_users_saving_at_once_one_wins_the_other_conflicts(session, engine):
    case, amy = setup_case(session)
    boss = make_user(session, "max", role="manager")
    seen = case.version
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def save(actor, hour):
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            try:
                outcomes[actor.username] = record_attempt(
                    session=own,
                    actor=actor,
                    data=attempt(
                        case, expected_version=seen, at=local(SHANGHAI, 1, hour)
                    ),
                )
            except Conflict as error:
                outcomes[actor.username] = error

    threads = [
        threading.Thread(target=save, args=(amy, 10)),
        threading.Thread(target=save, args=(boss, 11)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    conflicts = [o for o in outcomes.values() if isinstance(o, Conflict)]
    assert len(outcomes) == 2 and len(conflicts) == 1
    winner = next(name for name, o in outcomes.items() if not isinstance(o, Conflict))
    assert conflicts[0].params["by"] == winner
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 1
    case = reload(session, case)
    assert (case.attempt_count, case.version) == (1, seen + 1)
