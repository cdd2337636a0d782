"""The intake page: upload, preview, import and report, driven through AppTest."""

import json

from streamlit.testing.v1 import AppTest

from services import auth
from tests.conftest import APP_FILE, FIXTURES
from tests.factories import PASSWORD, make_user

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def manager_on_intake(session) -> AppTest:
    make_user(session, "mia", role="manager")
    token = auth.login(session=session, username="mia", password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/intake.py").run()
    return at


def upload(at: AppTest, name: str, mime: str) -> AppTest:
    at.selectbox(key="intake_creditor_choice:zh-CN").select("__new__").run()
    at.text_input(key="intake_creditor_name").input("Page Bank").run()
    at.file_uploader(key="intake_file").upload(
        name, (FIXTURES / name).read_bytes(), mime
    ).run()
    return at


def test_preview_shows_mapping(session):
    at = upload(manager_on_intake(session), "cases_zh.xlsx", XLSX)
    assert not at.exception
    assert at.button(key="intake_import")
    frames = [frame.value for frame in at.dataframe]
    assert any(
        len(frame) == min(20, EXPECTED["cases_zh.xlsx"]["imported"]) for frame in frames
    )


def test_import_reports_rows(session):
    at = upload(manager_on_intake(session), "cases_zh.xlsx", XLSX)
    at.button(key="intake_import").click().run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["已导入"] == str(EXPECTED["cases_zh.xlsx"]["imported"])
    assert metrics["已拒绝"] == str(len(EXPECTED["cases_zh.xlsx"]["rejected_rows"]))
    assert at.button(key="intake_import").disabled


def test_bad_file_shows_error(session):
    at = manager_on_intake(session)
    at.selectbox(key="intake_creditor_choice:zh-CN").select("__new__").run()
    at.text_input(key="intake_creditor_name").input("Page Bank").run()
    at.file_uploader(key="intake_file").upload(
        "photo.csv", b"\x89PNG\r\n\x1a\n" * 8, "text/csv"
    ).run()
    assert at.error
    assert "intake_import" not in [button.key for button in at.button]


def test_unrecognised_header_mapped_by_hand(session):
    import hashlib

    at = manager_on_intake(session)
    at.selectbox(key="intake_creditor_choice:zh-CN").select("__new__").run()
    at.text_input(key="intake_creditor_name").input("Odd Bank").run()
    content = b"Ref,Client,Owed,Late days\nR-1,Ann,10.00,5\nR-2,Bob,20.00,40\n"
    at.file_uploader(key="intake_file").upload("odd.csv", content, "text/csv").run()
    assert at.error
    assert "intake_import" not in [button.key for button in at.button]

    editor = f"mapping_editor:{hashlib.sha256(content).hexdigest()}"
    at.session_state[editor] = {
        "edited_rows": {
            0: {"field": "case_no"},
            1: {"field": "name"},
            2: {"field": "total_due"},
            3: {"field": "dpd_at_placement"},
        },
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception
    at.button(key="intake_import").click().run()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["已导入"] == "2"


def test_ambiguous_dates_ask_for_order(session):
    at = manager_on_intake(session)
    at.selectbox(key="intake_creditor_choice:zh-CN").select("__new__").run()
    at.text_input(key="intake_creditor_name").input("Date Bank").run()
    content = (
        "Account Number,Name,Balance Due,Delinquency Date\n"
        "D-1,Ann,10.00,03/05/2024\nD-2,Bob,20.00,04/06/2024\n"
    )
    at.file_uploader(key="intake_file").upload(
        "dates.csv", content.encode(), "text/csv"
    ).run()
    assert not at.exception
    assert at.warning
    radio = next(radio for radio in at.radio if str(radio.key).startswith("order:"))
    radio.set_value("dmy").run()
    assert not at.exception


def test_missing_case_number_keeps_detected_fields(session):
    at = manager_on_intake(session)
    at.selectbox(key="intake_creditor_choice:zh-CN").select("__new__").run()
    at.text_input(key="intake_creditor_name").input("Gap Bank").run()
    content = "Ref,姓名,委案金额,逾期天数\nR-1,张三,10.00,5\n".encode()
    at.file_uploader(key="intake_file").upload("gap.csv", content, "text/csv").run()
    assert not at.exception
    assert "案件编号" in at.error[0].value
    editor = next(frame for frame in at.dataframe)
    assert editor is not None
