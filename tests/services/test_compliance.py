"""The compliance guard at the limits of each rule of both built-in profiles, on
PostgreSQL, through the contact service that enforces it."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from db.models import AuditEntry, Creditor
from db.models_followup import ContactAttempt
from recova.errors import Conflict, InvalidInput, PermissionDenied
from services import compliance
from services.compliance import ComplianceRefused, ProfileInput, ResultCodeInput
from services.contacts import check_attempt, record_attempt
from tests.factories import make_user
from tests.followup_factories import (
    NEW_YORK,
    SHANGHAI,
    another_case,
    attempt,
    local,
    seed_builtins,
    setup_case,
)


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


def refused(session, actor, data) -> ComplianceRefused:
    with pytest.raises(ComplianceRefused) as caught:
        record_attempt(session=session, actor=actor, data=data)
    return caught.value


# Contact window (cn: 08:00-22:00 in the debtor's local time).


def test_cn_call_at_2159_is_allowed(session):
    case, amy = setup_case(session)
    data = attempt(case, at=local(SHANGHAI, 1, 21, 59))
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


def test_cn_call_at_2200_is_refused(session):
    case, amy = setup_case(session)
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 1, 22, 0)))
    assert error.rule == "window"


def test_window_refusal_says_when_contact_is_allowed_again(session):
    case, amy = setup_case(session)
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 2, 22, 0)))
    expected = local(SHANGHAI, 1, 8, 0)
    assert error.allowed_from == expected
    assert f"Contact is allowed again from {expected:%Y-%m-%d} 08:00" in error.message()


def test_window_refusal_reads_in_chinese(session):
    case, amy = setup_case(session)
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 2, 7, 59)))
    message = error.message("zh-CN")
    assert "08:00–22:00" in message
    assert f"{local(SHANGHAI, 2, 8, 0):%Y-%m-%d} 08:00" in message


def test_window_uses_the_debtors_zone_not_the_servers(session):
    case, amy = setup_case(session, profile="us-regf")
    # 09:30 in Shanghai is 20:30 or 21:30 the evening before in New York.
    late_evening = local(NEW_YORK, 2, 21, 30)
    error = refused(session, amy, attempt(case, at=late_evening))
    assert error.rule == "window"


def test_us_window_closes_at_2100(session):
    case, amy = setup_case(session, profile="us-regf")
    ok = attempt(case, at=local(NEW_YORK, 3, 20, 59))
    assert record_attempt(session=session, actor=amy, data=ok).attempt_id
    error = refused(session, amy, attempt(case, at=local(NEW_YORK, 2, 21, 0)))
    assert error.rule == "window"


def test_letter_is_not_bound_by_the_window(session):
    case, amy = setup_case(session)
    data = attempt(
        case, channel="letter", result_code="sent", at=local(SHANGHAI, 1, 23, 0)
    )
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


# cn daily caps.


def connected_calls(session, actor, case, count, days_ago=1):
    for hour in range(9, 9 + count):
        data = attempt(
            case,
            result_code="callback",
            recording_ref=f"rec-{hour}",
            at=local(SHANGHAI, days_ago, hour),
        )
        record_attempt(session=session, actor=actor, data=data)


def test_cn_third_connected_call_of_a_day_is_allowed(session):
    case, amy = setup_case(session)
    connected_calls(session, amy, case, 2)
    third = attempt(case, result_code="callback", at=local(SHANGHAI, 1, 15))
    assert record_attempt(session=session, actor=amy, data=third).attempt_id


def test_cn_fourth_connected_call_of_a_day_is_refused(session):
    case, amy = setup_case(session)
    connected_calls(session, amy, case, 3)
    error = refused(
        session, amy, attempt(case, result_code="callback", at=local(SHANGHAI, 1, 15))
    )
    assert error.rule == "connected_calls_per_day"
    assert error.allowed_from == local(SHANGHAI, 0, 8, 0)


def test_cn_connected_cap_counts_other_collectors_and_cases(session):
    case, amy = setup_case(session)
    bob = make_user(session, "bob", role="collector", team="north")
    sibling = another_case(session, case, "C-2", bob)
    # Both cases belong to one debtor.
    sibling.debtor_id = case.debtor_id
    session.commit()
    connected_calls(session, amy, case, 2)
    connected_calls(session, bob, sibling, 1, days_ago=1)
    error = refused(
        session, amy, attempt(case, result_code="callback", at=local(SHANGHAI, 1, 16))
    )
    assert error.rule == "connected_calls_per_day"


def test_cn_connected_cap_starts_again_the_next_day(session):
    case, amy = setup_case(session)
    connected_calls(session, amy, case, 3, days_ago=2)
    data = attempt(case, result_code="callback", at=local(SHANGHAI, 1, 9))
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


def unanswered(session, actor, case, count, number="138 0000 2222"):
    for minute in range(count):
        data = attempt(
            case, target_address=number, at=local(SHANGHAI, 1, 10, minute * 5)
        )
        record_attempt(session=session, actor=actor, data=data)


def test_cn_sixth_unanswered_attempt_to_a_number_is_allowed(session):
    case, amy = setup_case(session)
    unanswered(session, amy, case, 5)
    sixth = attempt(case, target_address="13800002222", at=local(SHANGHAI, 1, 12))
    assert record_attempt(session=session, actor=amy, data=sixth).attempt_id


def test_cn_seventh_unanswered_attempt_to_a_number_is_refused(session):
    case, amy = setup_case(session)
    unanswered(session, amy, case, 6)
    # The same number written another way still counts.
    error = refused(
        session,
        amy,
        attempt(case, target_address="+86 138-0000-2222", at=local(SHANGHAI, 1, 12)),
    )
    assert error.rule == "unanswered_per_number"
    assert "138****2222" in error.message()


def test_cn_unanswered_cap_is_per_number(session):
    case, amy = setup_case(session)
    unanswered(session, amy, case, 6)
    other = attempt(case, target_address="13900003333", at=local(SHANGHAI, 1, 12))
    assert record_attempt(session=session, actor=amy, data=other).attempt_id


def test_cn_call_without_a_number_counts_against_the_debtors_phone(session):
    case, amy = setup_case(session, phone="13800001111")
    unanswered(session, amy, case, 6, number="13800001111")
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 1, 12)))
    assert error.rule == "unanswered_per_number"


# us-regf: 7 calls in 7 days per case, and a quiet week after a conversation.


def us_calls(session, actors, case, count, first_day_ago=6):
    for index in range(count):
        actor = actors[index % len(actors)]
        data = attempt(case, at=local(NEW_YORK, first_day_ago, 9 + index))
        record_attempt(session=session, actor=actor, data=data)


def test_us_seventh_call_in_seven_days_is_allowed(session):
    case, amy = setup_case(session, profile="us-regf")
    lead = make_user(session, "lena", role="team_lead", team="north")
    us_calls(session, [amy, lead], case, 6)
    seventh = attempt(case, at=local(NEW_YORK, 1, 10))
    assert record_attempt(session=session, actor=amy, data=seventh).attempt_id


def test_us_eighth_call_in_seven_days_is_refused_across_two_collectors(session):
    case, amy = setup_case(session, profile="us-regf")
    lead = make_user(session, "lena", role="team_lead", team="north")
    us_calls(session, [amy, lead], case, 7)
    error = refused(session, amy, attempt(case, at=local(NEW_YORK, 1, 10)))
    assert error.rule == "calls_per_7_days"
    # The first of the seven calls leaves the window 7 days after it was made.
    assert error.allowed_from == local(NEW_YORK, 6, 9) + timedelta(days=7)


def test_us_calls_older_than_seven_days_do_not_count(session):
    case, amy = setup_case(session, profile="us-regf")
    us_calls(session, [amy], case, 7, first_day_ago=8)
    data = attempt(case, at=local(NEW_YORK, 1, 10))
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


def conversation(session, actor, case, at: datetime):
    data = attempt(case, result_code="refused", at=at)
    record_attempt(session=session, actor=actor, data=data)


def test_us_call_6_days_23_hours_after_a_conversation_is_refused(session):
    case, amy = setup_case(session, profile="us-regf")
    spoke = local(NEW_YORK, 8, 10)
    conversation(session, amy, case, spoke)
    error = refused(session, amy, attempt(case, at=spoke + timedelta(days=6, hours=23)))
    assert error.rule == "quiet_after_conversation"
    assert error.allowed_from == spoke + timedelta(days=7)


def test_us_call_7_days_after_a_conversation_is_allowed(session):
    case, amy = setup_case(session, profile="us-regf")
    spoke = local(NEW_YORK, 8, 10)
    conversation(session, amy, case, spoke)
    data = attempt(case, at=spoke + timedelta(days=7))
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


def test_us_electronic_message_needs_an_opt_out(session):
    case, amy = setup_case(session, profile="us-regf")
    sms = attempt(case, channel="sms", result_code="sent", at=local(NEW_YORK, 1, 10))
    assert refused(session, amy, sms).rule == "opt_out_missing"
    sms = sms.model_copy(update={"opt_out_included": True})
    assert record_attempt(session=session, actor=amy, data=sms).attempt_id


def test_opted_out_debtor_gets_no_electronic_message(session):
    case, amy = setup_case(session, profile="us-regf")
    case.flags = ["opt_out_electronic"]
    session.commit()
    email = attempt(
        case,
        channel="email",
        result_code="sent",
        opt_out_included=True,
        at=local(NEW_YORK, 1, 10),
    )
    assert refused(session, amy, email).rule == "opted_out"
    call = attempt(case, at=local(NEW_YORK, 1, 10))
    assert record_attempt(session=session, actor=amy, data=call).attempt_id


# Blocks whatever the profile.


@pytest.mark.parametrize(
    "flag", ["dispute", "complaint", "deceased", "bankrupt", "do_not_contact"]
)
def test_blocking_flag_refuses_outreach(session, flag):
    case, amy = setup_case(session)
    case.flags = [flag]
    session.commit()
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 1, 10)))
    assert error.rule == "flag_blocked"
    assert flag in error.message()


def test_paused_case_is_refused_until_its_resume_date(session):
    case, amy = setup_case(session)
    resume = local(SHANGHAI, -3, 8).date()
    case.status, case.paused_until, case.pause_reason = "paused", resume, "hospital"
    session.commit()
    error = refused(session, amy, attempt(case, at=local(SHANGHAI, 1, 10)))
    assert error.rule == "case_paused"
    assert error.allowed_from == local(SHANGHAI, -3, 8)


def test_disputed_case_is_refused(session):
    case, amy = setup_case(session)
    case.status = "disputed"
    session.commit()
    assert refused(session, amy, attempt(case)).rule == "case_disputed"


@pytest.mark.parametrize("status", ["paid", "settled", "written_off", "recalled"])
def test_closed_case_allows_no_outreach(session, status):
    case, amy = setup_case(session)
    case.status = status
    session.commit()
    assert refused(session, amy, attempt(case)).rule == "case_closed"


# Notes, warnings.


@pytest.mark.parametrize(
    "note, word",
    [
        ("再不还钱就让你坐牢", "坐牢"),
        ("告诉你通讯录里的人", "通讯录"),
        ("你这个骗子", "骗子"),
        ("滚！", "滚"),
        ("Pay now or we will tell your family", "we will tell your family"),
        ("You IDIOT, pay", "IDIOT"),
        ("you could go to JAIL", "JAIL"),
        ("Pay now or we will hurt your family", "will hurt"),
        ("We'll come to your house tonight", "come to your house"),
        ("You will be arrested", "You will be arrested"),
        ("小心点，我们找你家人", "小心点"),
    ],
)
def test_threat_or_insult_in_note_is_refused_naming_the_word(session, note, word):
    case, amy = setup_case(session)
    error = refused(session, amy, attempt(case, note=note, at=local(SHANGHAI, 1, 10)))
    assert error.rule == "abusive_note"
    assert f"“{word}”" in error.message("en")
    assert f"“{word}”" in error.message("zh-CN")


@pytest.mark.parametrize(
    "note",
    [
        "客户说下周滚动还款",
        "Debtor has skills training",
        "已发短信提醒",
        "Debtor was hurt in an accident, asks for a plan",
        "Says his brother was arrested last year",
        "We can get you a plan of 6 installments",
    ],
)
def test_ordinary_note_passes(session, note):
    case, amy = setup_case(session)
    data = attempt(case, note=note, at=local(SHANGHAI, 1, 10))
    assert record_attempt(session=session, actor=amy, data=data).attempt_id


def test_refused_attempt_writes_nothing(session):
    case, amy = setup_case(session)
    refused(session, amy, attempt(case, note="去死", at=local(SHANGHAI, 1, 10)))
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 0


def test_cn_connected_call_without_recording_warns_but_saves(session):
    case, amy = setup_case(session)
    data = attempt(case, result_code="callback", at=local(SHANGHAI, 1, 10))
    result = record_attempt(session=session, actor=amy, data=data)
    assert result.warnings == ["compliance.warn_recording_missing"]


def test_call_to_a_third_party_warns_about_disclosure(session):
    case, amy = setup_case(session)
    data = attempt(
        case,
        target="third_party",
        target_address="13700004444",
        result_code="third_party",
        recording_ref="r1",
        at=local(SHANGHAI, 1, 10),
    )
    result = record_attempt(session=session, actor=amy, data=data)
    assert result.warnings == ["compliance.warn_no_disclosure"]


def test_check_attempt_answers_without_writing(session):
    case, amy = setup_case(session)
    verdict = check_attempt(
        session=session, actor=amy, data=attempt(case, at=local(SHANGHAI, 1, 23))
    )
    assert (verdict.allowed, verdict.rule) == (False, "window")
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 0


# Profiles and result codes.


def tightened(**rules) -> ProfileInput:
    return ProfileInput(code="cn-strict", name="Strict", based_on="cn", rules=rules)


def test_admin_copies_a_profile_and_tightens_it(session):
    admin = make_user(session, "root", role="admin")
    profile = compliance.save_profile(
        session=session,
        actor=admin,
        data=tightened(window_start="09:00", max_connected_calls_per_day=2),
    )
    assert (profile.rules.window_start, profile.based_on) == ("09:00", "cn")
    assert profile.rules.max_unanswered_per_number_per_day == 6


def test_copy_that_loosens_is_refused(session):
    admin = make_user(session, "root", role="admin")
    with pytest.raises(InvalidInput) as caught:
        compliance.save_profile(
            session=session, actor=admin, data=tightened(window_end="23:00")
        )
    assert caught.value.code == "profile_loosens"
    assert caught.value.params["rule"] == "window_end"


def test_builtin_profile_is_read_only(session):
    admin = make_user(session, "root", role="admin")
    data = ProfileInput(code="cn", name="mine", based_on="cn", rules={})
    with pytest.raises(InvalidInput):
        compliance.save_profile(session=session, actor=admin, data=data)


def test_profile_edit_with_old_version_conflicts(session):
    admin = make_user(session, "root", role="admin")
    compliance.save_profile(session=session, actor=admin, data=tightened())
    again = tightened(window_start="10:00").model_copy(update={"expected_version": 1})
    compliance.save_profile(session=session, actor=admin, data=again)
    with pytest.raises(Conflict):
        compliance.save_profile(session=session, actor=admin, data=again)


def test_creditor_profile_applies_to_its_cases(session):
    case, amy = setup_case(session)
    admin = make_user(session, "root", role="admin")
    compliance.save_profile(
        session=session, actor=admin, data=tightened(window_end="20:00")
    )
    compliance.set_creditor_profile(
        session=session,
        actor=admin,
        creditor_id=case.creditor_id,
        profile_code="cn-strict",
    )
    assert session.get(Creditor, case.creditor_id).compliance_profile == "cn-strict"
    assert (
        refused(session, amy, attempt(case, at=local(SHANGHAI, 1, 20, 30))).rule
        == "window"
    )
    actions = set(session.scalars(select(AuditEntry.action)))
    assert {"compliance_profile_saved", "creditor_profile_set"} <= actions


def test_collector_may_not_change_profiles(session):
    amy = make_user(session, "amy", role="collector")
    with pytest.raises(PermissionDenied):
        compliance.save_profile(session=session, actor=amy, data=tightened())


def test_admin_adds_a_result_code_collectors_can_use(session):
    case, amy = setup_case(session)
    admin = make_user(session, "root", role="admin")
    compliance.add_result_code(
        session=session,
        actor=admin,
        data=ResultCodeInput(
            code="lawyer",
            label_en="Has a lawyer",
            label_zh="已委托律师",
            connected=True,
            right_party=True,
            sets_flag="do_not_contact",
        ),
    )
    codes = compliance.list_result_codes(session=session, actor=amy)
    assert codes[-1].code == "lawyer" and len(codes) == 17
    data = attempt(
        case, result_code="lawyer", recording_ref="r", at=local(SHANGHAI, 1, 9)
    )
    record_attempt(session=session, actor=amy, data=data)
    later = attempt(case, at=local(SHANGHAI, 1, 10))
    assert refused(session, amy, later).rule == "flag_blocked"
