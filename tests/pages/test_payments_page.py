"""The payments page for finance, driven through AppTest."""

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import Payment, UnmatchedPayment
from services import auth
from tests.approval_helpers import (
    case_row,
    import_cases,
    import_fixture_payments,
    make_staff,
)
from tests.conftest import APP_FILE, FIXTURES
from tests.factories import PASSWORD

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
PAYMENTS = EXPECTED["payments_zh.csv"]


@pytest.fixture
def staff(session):
    import_cases(session)
    return make_staff(session)


def finance_page(session) -> AppTest:
    token = auth.login(session=session, username="fay", password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/payments.py").run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_import_fixture_from_page(staff, session):
    at = finance_page(session)
    at.file_uploader(key="payments_file").upload(
        "payments_zh.csv", (FIXTURES / "payments_zh.csv").read_bytes(), "text/csv"
    ).run()
    assert not at.exception
    assert "待入账或待匹配 6 行，拒绝 0 行，文件内重复 1 行。" in [
        markdown.value for markdown in at.markdown
    ]

    at.button(key="payments_import").click().run()
    counts = metrics(at)
    assert counts["已入账"] == str(PAYMENTS["posted"])
    assert counts["未匹配"] == "1"
    assert counts["重复跳过"] == "1"
    assert counts["已拒绝"] == "0"
    assert at.button(key="payments_import").disabled
    assert session.scalar(select(func.count()).select_from(Payment)) == 5


def test_bad_file_shows_error(staff, session):
    at = finance_page(session)
    at.file_uploader(key="payments_file").upload(
        "photo.csv", b"\x89PNG\r\n\x1a\n" * 8, "text/csv"
    ).run()
    assert at.error


def test_match_unmatched_from_page(staff, session):
    import_fixture_payments(session)
    at = finance_page(session)
    at.text_input(key="unmatched_case_no").input("GBK2411000003")
    at.text_area(key="unmatched_evidence").input("债务人来电确认")
    next(b for b in at.button if b.label == "入账到该案件").click().run()
    assert not at.exception
    assert "回款 TX0004 已入账到案件 GBK2411000003。" in [s.value for s in at.success]
    queued = session.scalars(select(UnmatchedPayment)).one()
    session.refresh(queued)
    assert queued.status == "matched"


def test_manual_post_needs_evidence(staff, session):
    at = finance_page(session)
    at.text_input(key="manual_case_no").input("GBK2411000002")
    at.text_input(key="manual_transaction").input("M-1")
    at.text_input(key="manual_amount").input("18.13")
    next(b for b in at.button if b.label == "入账").click().run()
    assert at.error
    assert case_row(session, "GBK2411000002").balance == Decimal("1018.13")

    at.text_area(key="manual_evidence").input("银行回单 88")
    next(b for b in at.button if b.label == "入账").click().run()
    assert "回款 M-1 已入账到案件 GBK2411000002。" in [s.value for s in at.success]
    assert case_row(session, "GBK2411000002").balance == Decimal("1000.00")


def test_confirm_recoveries_from_page(staff, session):
    import_fixture_payments(session)
    at = finance_page(session)
    at.text_input(key="confirm_statement").input("DZD-1")
    at.button(key="confirm_button").click().run()
    assert not at.exception
    assert any("已确认 5 笔回款" in s.value for s in at.success)
