"""The request form at the end of the case view, driven through AppTest."""

from decimal import Decimal

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import ApprovalRequest
from services import auth
from tests.approval_helpers import assign, import_cases, make_staff
from tests.conftest import APP_FILE
from tests.factories import PASSWORD

CASE = "GBK2411000002"
SELECT_FIRST_ROW = {"selection": {"rows": [0], "columns": [], "cells": []}}


@pytest.fixture
def staff(session):
    import_cases(session)
    staff = make_staff(session)
    assign(session, CASE, staff.collector)
    return staff


def case_view(session, username: str) -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/cases.py").run()
    at.text_input(key="cases_search").input(CASE).run()
    at.session_state["cases_table"] = SELECT_FIRST_ROW
    at.run()
    assert not at.exception
    return at


def submit(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "提交申请").click().run()


def test_collector_files_settlement(staff, session):
    at = case_view(session, "cole")
    at.text_input(key="request_figure").input("1,000.00")
    at.radio(key="request_basis").set_value("new_balance")
    at.text_area(key="request_reason").input("债务人愿意一次性还 1000 元")
    submit(at)
    request = session.scalars(select(ApprovalRequest)).one()
    assert [s.value for s in at.success] == [
        f"申请 #{request.id} 已提交，等待组长审批。"
    ]
    assert request.amount == Decimal("18.13")
    assert request.requested_by == staff.collector.id


def test_request_without_reason_shows_error(staff, session):
    at = case_view(session, "cole")
    at.text_input(key="request_figure").input("100")
    submit(at)
    assert at.error
    assert session.scalars(select(ApprovalRequest)).all() == []


def test_write_off_takes_whole_balance(staff, session):
    at = case_view(session, "cole")
    at.radio(key="request_kind").set_value("write_off")
    at.text_area(key="request_reason").input("债务人已故，无遗产")
    submit(at)
    request = session.scalars(select(ApprovalRequest)).one()
    assert request.kind == "write_off"
    assert request.amount == Decimal("1018.13")


def test_finance_sees_no_form(staff, session):
    at = case_view(session, "fay")
    assert "减免与核销申请" in [header.value for header in at.subheader]
    assert not [b for b in at.button if b.label == "提交申请"]
