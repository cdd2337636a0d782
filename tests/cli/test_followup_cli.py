"""`recova contact add`, `promise add`, `remind` and `jobs run-daily`, run as
subprocesses against the test database."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db.models_followup import ContactAttempt, Promise
from services.segments import local_today
from tests.cli.test_cli import recova
from tests.factories import make_user
from tests.followup_factories import (
    SHANGHAI,
    another_case,
    local,
    seed_builtins,
    setup_case,
)


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def contact(database_url, *extra):
    return recova(
        database_url,
        "contact",
        "add",
        "C-1",
        "--creditor",
        "Test Bank",
        "--channel",
        "phone",
        "--as",
        "amy",
        "--json",
        *extra,
    )


def test_contact_add_records_the_attempt(session, database_url):
    setup_case(session)
    at = local(SHANGHAI, 1, 10).isoformat()
    result = contact(
        database_url, "--result", "callback", "--at", at, "--note", "will call back"
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["warnings"] == ["compliance.warn_recording_missing"]
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 1


def test_contact_add_refusal_gives_rule_and_time(session, database_url):
    setup_case(session)
    at = local(SHANGHAI, 1, 22, 30).isoformat()
    result = contact(database_url, "--result", "no_answer", "--at", at)
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["rule"] == "window"
    assert payload["allowed_from"].startswith(
        local(SHANGHAI, 0, 8).strftime("%Y-%m-%dT08:00")
    )
    assert "Contact is allowed again from" in payload["message"]


def test_contact_add_text_refusal_names_the_rule(session, database_url):
    setup_case(session)
    result = recova(
        database_url,
        "contact",
        "add",
        "C-1",
        "--creditor",
        "Test Bank",
        "--channel",
        "phone",
        "--result",
        "no_answer",
        "--note",
        "你这个骗子",
        "--at",
        local(SHANGHAI, 1, 10).isoformat(),
        "--as",
        "amy",
    )
    assert result.returncode == 1
    assert "abusive_note" in result.stderr and "骗子" in result.stderr


def test_contact_add_on_another_collectors_case_is_refused(session, database_url):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector")
    another_case(session, case, "C-9", bob)
    other = recova(
        database_url,
        "contact",
        "add",
        "C-9",
        "--creditor",
        "Test Bank",
        "--channel",
        "phone",
        "--result",
        "no_answer",
        "--as",
        "amy",
        "--json",
    )
    assert other.returncode == 1
    assert json.loads(other.stdout)["error"] == "case_not_yours"


def test_bad_channel_is_a_usage_error(session, database_url):
    setup_case(session)
    result = recova(
        database_url,
        "contact",
        "add",
        "C-1",
        "--creditor",
        "Test Bank",
        "--channel",
        "pigeon",
        "--result",
        "no_answer",
        "--as",
        "amy",
    )
    assert result.returncode == 2
    assert "channel" in result.stderr


def test_promise_add(session, database_url):
    setup_case(session)
    due = (local_today() + timedelta(days=5)).isoformat()
    result = recova(
        database_url,
        "promise",
        "add",
        "C-1",
        "--creditor",
        "Test Bank",
        "--amount",
        "800.00",
        "--due",
        due,
        "--as",
        "amy",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["amount"], payload["due_on"], payload["status"]) == (
        "800.00",
        due,
        "pending",
    )
    assert session.scalar(select(func.count()).select_from(Promise)) == 1


def test_remind_json(session, database_url):
    setup_case(session)
    result = recova(database_url, "remind", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["date"] == local_today().isoformat()
    assert {(r["user"], r["kind"], r["case_no"]) for r in payload["reminders"]} == {
        ("amy", "first_contact_due", "C-1"),
        ("amy", "idle", "C-1"),
    }
    assert payload["reminders"][0]["debtor_name_masked"].startswith("D*")


def test_run_daily_twice_changes_nothing_the_second_time(session, database_url):
    setup_case(session)
    first = recova(database_url, "jobs", "run-daily")
    second = recova(database_url, "jobs", "run-daily")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["send_digests"] == 1
    assert json.loads(second.stdout)["send_digests"] == 0
