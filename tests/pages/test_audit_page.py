"""The audit log page, driven through AppTest."""

from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from services import approvals, auth
from tests.approval_helpers import assign, case_row, import_cases, make_staff
from tests.conftest import APP_FILE
from tests.factories import PASSWORD


@pytest.fixture
def staff(session):
    import_cases(session)
    staff = make_staff(session)
    assign(session, "GBK2411000002", staff.collector)
    approvals.request_approval(
        session=session,
        actor=staff.collector,
        data=approvals.NewRequest(
            case_id=case_row(session, "GBK2411000002").id,
            kind="settlement",
            amount=Decimal("18.13"),
            reason="一次性结清",
        ),
    )
    return staff


def audit_page(session, username: str = "aud") -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/audit.py").run()
    return at


def test_auditor_searches_by_case(staff, session):
    at = audit_page(session)
    assert not at.exception
    at.text_input(key="audit_case_no").input("GBK2411000002").run()
    frame = at.dataframe[0].value
    assert frame["操作"].to_list() == ["approval_requested"]
    assert '"status": "pending"' in frame["变更后"][0]


def test_unknown_case_shows_nothing(staff, session):
    at = audit_page(session)
    at.text_input(key="audit_case_no").input("NO-SUCH-CASE").run()
    assert at.info[0].value == "没有符合条件的记录。"


def test_export_offers_download(staff, session):
    at = audit_page(session)
    at.button(key="audit_export").click().run()
    assert not at.exception
    assert at.session_state["audit_export_count"] >= 1
    assert at.session_state["audit_export_file"][:2] == b"PK"


def test_collector_has_no_audit_page(staff, session):
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        audit_page(session, "cole")
