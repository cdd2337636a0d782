"""Pause, resume, flags and switch requests on difficult debtors, on PostgreSQL."""

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from db.models import AuditEntry, Notification
from recova.errors import Conflict, InvalidInput, PermissionDenied
from services.case_actions import (
    FlagInput,
    PauseInput,
    ResumeInput,
    SwitchRequest,
    pause_case,
    request_switch,
    resume_case,
    resume_due_cases,
    set_flag,
)
from services.segments import local_today
from tests.factories import make_user
from tests.followup_factories import reload, seed_builtins, setup_case, team_lead


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def pause(case, days=3, **fields) -> PauseInput:
    values = {
        "case_id": case.id,
        "reason": "in hospital",
        "resume_on": local_today() + timedelta(days=days),
    }
    values.update(fields)
    return PauseInput(**values)


def test_pause_stops_the_case_until_its_date(session):
    case, amy = setup_case(session)
    seen = case.version
    version = pause_case(
        session=session, actor=amy, data=pause(case, expected_version=seen)
    )
    case = reload(session, case)
    assert (case.status, case.pause_reason, version) == (
        "paused",
        "in hospital",
        seen + 1,
    )


def test_pause_needs_a_reason():
    with pytest.raises(ValidationError):
        PauseInput(case_id=1, reason="  ", resume_on=local_today())


def test_pause_with_resume_date_today_is_refused(session):
    case, amy = setup_case(session)
    with pytest.raises(InvalidInput):
        pause_case(session=session, actor=amy, data=pause(case, days=0))


def test_second_identical_pause_changes_nothing(session):
    case, amy = setup_case(session)
    first = pause_case(session=session, actor=amy, data=pause(case))
    assert pause_case(session=session, actor=amy, data=pause(case)) == first


def test_resume_returns_the_case_to_its_work(session):
    case, amy = setup_case(session)
    pause_case(session=session, actor=amy, data=pause(case))
    resume_case(session=session, actor=amy, data=ResumeInput(case_id=case.id))
    case = reload(session, case)
    assert (case.status, case.paused_until) == ("assigned", None)


def test_daily_job_resumes_cases_whose_date_has_come(session):
    case, amy = setup_case(session)
    pause_case(session=session, actor=amy, data=pause(case, days=2))
    assert (
        resume_due_cases(session=session, today=local_today() + timedelta(days=1)) == 0
    )
    assert (
        resume_due_cases(session=session, today=local_today() + timedelta(days=2)) == 1
    )
    assert reload(session, case).status == "assigned"
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case_resumed")
    ).one()
    assert entry.actor_name == "system"


def test_stale_pause_conflicts(session):
    case, amy = setup_case(session)
    seen = case.version
    pause_case(session=session, actor=amy, data=pause(case, expected_version=seen))
    with pytest.raises(Conflict) as caught:
        pause_case(
            session=session, actor=amy, data=pause(case, 5, expected_version=seen)
        )
    assert caught.value.params["by"] == "amy"


def flag(case, name, on=True) -> FlagInput:
    return FlagInput(case_id=case.id, flag=name, on=on, reason="debtor letter")


def test_dispute_flag_disputes_the_case_and_clearing_restores_it(session):
    case, amy = setup_case(session)
    set_flag(session=session, actor=amy, data=flag(case, "dispute"))
    assert reload(session, case).status == "disputed"
    lena = team_lead(session)
    set_flag(session=session, actor=lena, data=flag(case, "dispute", on=False))
    case = reload(session, case)
    assert (case.status, case.flags) == ("assigned", [])


def test_collector_may_not_clear_a_flag(session):
    case, amy = setup_case(session)
    set_flag(session=session, actor=amy, data=flag(case, "bankrupt"))
    with pytest.raises(PermissionDenied):
        set_flag(session=session, actor=amy, data=flag(case, "bankrupt", on=False))


def test_setting_a_flag_twice_changes_nothing(session):
    case, amy = setup_case(session)
    first = set_flag(session=session, actor=amy, data=flag(case, "do_not_contact"))
    assert (
        set_flag(session=session, actor=amy, data=flag(case, "do_not_contact")) == first
    )
    assert reload(session, case).flags == ["do_not_contact"]


def test_collector_may_not_flag_another_collectors_case(session):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector")
    with pytest.raises(PermissionDenied):
        set_flag(session=session, actor=bob, data=flag(case, "complaint"))


def test_switch_request_tells_the_team_lead_once(session):
    case, amy = setup_case(session)
    lena = team_lead(session)
    data = SwitchRequest(case_id=case.id, reason="debtor threatens me")
    request_switch(session=session, actor=amy, data=data)
    request_switch(session=session, actor=amy, data=data)
    notes = session.scalars(select(Notification)).all()
    assert [(n.user_id, n.kind) for n in notes] == [(lena.id, "switch_requested")]
    assert reload(session, case).switch_requested_at is not None
