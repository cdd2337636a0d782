"""The approval page, driven through AppTest: approvers decide requests at their
level, collectors follow their own requests, admins set the authority limits."""

from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from db.models import ApprovalRequest
from services import approvals, auth
from tests.approval_helpers import assign, case_row, import_cases, make_staff
from tests.conftest import APP_FILE
from tests.factories import PASSWORD

CASE = "GBK2411000001"


@pytest.fixture
def staff(session):
    import_cases(session)
    staff = make_staff(session)
    assign(session, CASE, staff.collector)
    return staff


def file_request(session, actor, amount: str) -> ApprovalRequest:
    return approvals.request_approval(
        session=session,
        actor=actor,
        data=approvals.NewRequest(
            case_id=case_row(session, CASE).id,
            kind="settlement",
            amount=Decimal(amount),
            reason="债务人同意一次性还清剩余欠款",
        ),
    )


def open_page(session, username: str) -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/approvals.py").run()
    assert not at.exception
    return at


def button(at: AppTest, key: str):
    return at.button(key=key)


def stored(session, request_id: int) -> ApprovalRequest:
    session.expire_all()
    return session.get(ApprovalRequest, request_id)


def test_manager_approves_request(staff, session):
    request = file_request(session, staff.team_lead, "20000.00")
    at = open_page(session, "mona")
    assert at.selectbox(key="approval_pick").value == request.id
    assert "#" in at.selectbox(key="approval_pick").format_func(request.id)

    button(at, "approve_button").click().run()

    assert not at.exception
    assert [message.value for message in at.success] == ["申请当前状态：已批准。"]
    assert stored(session, request.id).status == "approved"
    assert case_row(session, CASE).balance == Decimal("235849.68")


def test_team_lead_passes_request_up(staff, session):
    request = file_request(session, staff.collector, "20000.00")
    at = open_page(session, "lee")
    button(at, "approve_button").click().run()
    assert [message.value for message in at.success] == [
        "已批准。申请现在等待催收主管审批。"
    ]
    assert stored(session, request.id).next_level == "manager"
    at.run()
    assert at.info[0].value == "没有等待您审批的申请。"


def test_reject_without_reason_shows_error(staff, session):
    request = file_request(session, staff.team_lead, "20000.00")
    at = open_page(session, "mona")
    button(at, "reject_button").click().run()
    assert [error.value for error in at.error] == [
        "驳回必须填写原因。请写明驳回的理由。"
    ]
    assert stored(session, request.id).status == "pending"


def test_reject_with_reason(staff, session):
    request = file_request(session, staff.team_lead, "20000.00")
    at = open_page(session, "mona")
    at.text_area(key=f"approval_comment_{request.id}").input("金额过大，请先谈分期")
    button(at, "reject_button").click().run()
    assert stored(session, request.id).status == "rejected"
    assert stored(session, request.id).decision_reason == "金额过大，请先谈分期"


def test_case_history_shown(staff, session):
    file_request(session, staff.team_lead, "20000.00")
    at = open_page(session, "mona")
    labels = [expander.label for expander in at.expander]
    assert "案件历史" in labels
    frames = [frame.value for frame in at.dataframe]
    assert any("approval_requested" in frame.to_string() for frame in frames)


def test_requester_cannot_see_own_request_to_decide(staff, session):
    file_request(session, staff.team_lead, "5000.00")
    at = open_page(session, "lee")
    assert at.info[0].value == "没有等待您审批的申请。"
    assert not [b for b in at.button if b.key == "approve_button"]


def test_collector_sees_own_requests_and_notice(staff, session):
    request = file_request(session, staff.collector, "5000.00")
    approvals.approve(
        session=session,
        actor=staff.team_lead,
        decision=approvals.Decision(request_id=request.id, step=1),
    )
    at = open_page(session, "cole")
    assert "我的申请" in [header.value for header in at.subheader]
    table = next(
        frame.value for frame in at.dataframe if "申请状态" in frame.value.columns
    )
    notices = [markdown.value for markdown in at.markdown]
    assert table["申请状态"].to_list() == ["已批准"]
    assert any(f"案件 {CASE} 的减免申请" in notice for notice in notices)
    button(at, "notifications_read").click().run()
    assert approvals.list_notifications(session=session, actor=staff.collector) == []


def test_admin_changes_limits(staff, session):
    at = open_page(session, "ada")
    at.text_input(key="limit_team_lead").input("8000")
    at.text_input(key="limit_manager").input("90000")
    submit = next(b for b in at.button if b.label == "保存权限")
    submit.click().run()
    assert not at.exception
    limits = approvals.get_limits(session=session)
    assert limits.team_lead == Decimal("8000.00")
    assert limits.manager == Decimal("90000.00")


def test_page_in_english(staff, session):
    file_request(session, staff.team_lead, "20000.00")
    from services import users

    users.set_language(session=session, actor=staff.manager, language="en")
    at = open_page(session, "mona")
    assert at.title[0].value == "Approvals"
    assert button(at, "approve_button").label == "Approve"
