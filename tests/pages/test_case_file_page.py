"""The case file page through AppTest: sections, the contact log form, compliance
refusals, stale edits, double submits, unmasking, and the compliance admin page."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from streamlit.testing.v1 import AppTest

from db.models import AuditEntry, Debtor
from db.models_followup import ContactAttempt, ResultCode
from services import auth
from tests.case_factories import make_batch, make_collector
from tests.conftest import APP_FILE
from tests.factories import PASSWORD, make_user
from tests.services.test_queue_support import queued_case, seed_followup

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(ZONE)
# Inside the cn contact window (08:00-22:00) and in the past, whatever the hour now.
YESTERDAY = (NOW - timedelta(days=1)).date()


@pytest.fixture
def case(session):
    seed_followup(session)
    ann = make_collector(session, "ann", team="North")
    make_collector(session, "bob", team="North")
    make_user(session, "lena", role="team_lead", team="North")
    batch = make_batch(session)
    case = queued_case(
        session, batch, ann, "CF100", NOW, next_action_at=NOW - timedelta(hours=1)
    )
    debtor = session.get(Debtor, case.debtor_id)
    debtor.phones = ["13812345678"]
    debtor.id_number = "110105199001011234"
    session.commit()
    return case


def open_case(session, username: str, case_id: int) -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.session_state["case_file_id"] = case_id
    at.run()
    at.switch_page("pages/case_file.py").run()
    assert not at.exception
    return at


def fill_attempt(at: AppTest, hour: int, note: str, result: str = "no_answer"):
    at.selectbox(key="contact_channel").set_value("phone")
    at.selectbox(key="contact_result").set_value(result)
    at.text_area(key="contact_note").input(note)
    at.date_input(key="contact_at_day").set_value(YESTERDAY)
    at.time_input(key="contact_at_time").set_value(time(hour, 0))


def attempts(session) -> list[ContactAttempt]:
    session.expire_all()
    return list(session.scalars(select(ContactAttempt).order_by(ContactAttempt.id)))


def test_case_file_shows_sections(session, case):
    at = open_case(session, "ann", case.id)

    assert "CF100" in at.subheader[0].value
    labels = [tab.label for tab in at.tabs]
    assert "催记" in labels
    assert "附件" in labels
    assert any("138****5678" in str(md.value) for md in at.markdown)


def test_record_attempt_through_form(session, case):
    at = open_case(session, "ann", case.id)
    fill_attempt(at, 10, "无人接听，明天再打")
    at.button(key="contact_save").click().run()

    assert not at.exception
    assert not at.error
    saved = attempts(session)
    assert [a.note for a in saved] == ["无人接听，明天再打"]
    assert saved[0].target_address == "13812345678"
    assert "催记已保存" in at.success[0].value
    assert at.text_area(key="contact_note").value == ""


def test_connected_call_without_recording_warns(session, case):
    at = open_case(session, "ann", case.id)
    fill_attempt(at, 10, "客户要求明天回电", result="callback")
    at.button(key="contact_save").click().run()

    assert not at.exception
    assert [a.result_code for a in attempts(session)] == ["callback"]
    assert "催记已保存" in at.success[0].value
    assert any("录音" in warning.value for warning in at.warning)


def test_compliance_refusal_shows_rule(session, case):
    at = open_case(session, "ann", case.id)
    fill_attempt(at, 23, "late call")
    at.button(key="contact_save").click().run()

    assert at.error
    message = at.error[0].value
    assert "22:00" in message
    assert attempts(session) == []


def test_conflict_keeps_typed_note(session, case):
    at = open_case(session, "ann", case.id)
    lena = session.scalar(text("SELECT id FROM users WHERE username = 'lena'"))
    session.execute(
        text(
            "UPDATE cases SET version = version + 1, updated_by = :lena, "
            "updated_at = now() WHERE id = :case"
        ),
        {"lena": lena, "case": case.id},
    )
    session.commit()

    fill_attempt(at, 10, "typed before the conflict")
    at.button(key="contact_save").click().run()

    assert at.error
    assert "lena" in at.error[0].value
    assert at.text_area(key="contact_note").value == "typed before the conflict"
    assert attempts(session) == []
    assert at.button(key="case_file_reload")


def test_double_submit_records_once(session, case):
    at = open_case(session, "ann", case.id)
    fill_attempt(at, 10, "same attempt twice")
    at.button(key="contact_save").click().run()
    fill_attempt(at, 10, "same attempt twice")
    at.button(key="contact_save").click().run()

    assert len(attempts(session)) == 1
    assert any("已经保存" in info.value for info in at.info)


def test_other_collectors_case_refused(session, case):
    at = open_case(session, "bob", case.id)

    assert at.error
    assert "CF100" in at.error[0].value
    assert not at.tabs


def test_unmask_with_reason(session, case):
    at = open_case(session, "ann", case.id)
    at.selectbox(key="unmask_field").set_value("id_number")
    at.text_input(key="unmask_reason").input("债务人要求核对身份")
    at.button(key="unmask_show").click().run()

    assert at.code[0].value == "110105199001011234"
    entry = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "pii_unmasked")
    )
    assert entry.detail["reason"] == "债务人要求核对身份"


def test_unmask_without_reason_refused(session, case):
    at = open_case(session, "ann", case.id)
    at.button(key="unmask_show").click().run()

    assert at.error
    assert not at.code


def test_upload_attachment(session, case):
    at = open_case(session, "ann", case.id)
    at.file_uploader(key="attachment_upload").upload(
        "合同.pdf", b"%PDF-1.4", "application/pdf"
    )
    at.run()
    at.button(key="attachment_save").click().run()

    assert not at.exception
    assert "合同.pdf" in at.success[0].value


def test_admin_adds_result_code(session):
    seed_followup(session)
    make_user(session, "ada", role="admin")
    token = auth.login(session=session, username="ada", password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/compliance.py").run()
    assert not at.exception

    at.text_input(key="code_code").input("left_message_family")
    at.text_input(key="code_zh").input("家人转告")
    at.text_input(key="code_en").input("Message left with family")
    at.checkbox(key="code_connected").check()
    at.button(key="code_add").click().run()

    assert not at.error
    added = session.get(ResultCode, "left_message_family")
    assert added.label_zh == "家人转告"
    assert not added.right_party


def test_admin_copy_must_tighten(session):
    seed_followup(session)
    make_user(session, "ada", role="admin")
    token = auth.login(session=session, username="ada", password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/compliance.py").run()

    at.text_input(key="compliance_code").input("cn_strict")
    at.text_input(key="compliance_name").input("Stricter China")
    at.text_input(key="cp_end").input("23:00")
    at.button(key="compliance_save").click().run()
    assert at.error

    at.text_input(key="cp_end").input("20:00")
    at.button(key="compliance_save").click().run()
    assert not at.error
    assert "cn_strict" in at.success[0].value


def test_risk_tab_shows_points_that_add_up(session, case):
    from services import scoring
    from services.segments import local_today

    at = open_case(session, "ann", case.id)
    assert any("尚未评分" in caption.value for caption in at.caption)

    scoring.score_open_cases(session=session, day=local_today())
    explained = scoring.explain_case(
        session=session, actor=scoring_actor(session, "ann"), case_id=case.id
    )
    at = open_case(session, "ann", case.id)
    lines = next(frame.value for frame in at.dataframe if "分值" in frame.value)
    assert sum(lines["分值"]) == explained.score
    assert any(metric.value == explained.grade for metric in at.metric)


def scoring_actor(session, username: str):
    from db.models import User
    from services.actors import Actor

    user = session.scalars(select(User).where(User.username == username)).one()
    return Actor.from_user(user)


def test_pause_needs_reason_then_pauses(session, case):
    from db.models import Case

    at = open_case(session, "ann", case.id)
    at.date_input(key="pause_resume_on").set_value(NOW.date() + timedelta(days=7))
    at.button(key="pause_save").click().run()
    assert "请填写原因" in at.error[0].value

    at.text_input(key="pause_reason").input("客户住院，下周再联系")
    at.button(key="pause_save").click().run()
    assert not at.exception
    session.expire_all()
    assert session.get(Case, case.id).status == "paused"


def test_promise_form_creates_promise(session, case):
    from db.models_followup import Promise

    at = open_case(session, "ann", case.id)
    at.text_input(key="promise_amount").input("800.50")
    at.date_input(key="promise_due").set_value(NOW.date() + timedelta(days=3))
    at.button(key="promise_save").click().run()
    assert not at.exception
    assert [error.value for error in at.error] == []
    session.expire_all()
    saved = session.scalars(select(Promise)).all()
    assert [str(promise.amount) for promise in saved] == ["800.50"]
