"""Payments and approvals in Chromium: finance imports the creditor's payment file,
and a settlement request climbs from the collector through the team lead to a
manager."""

import json
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.approval_helpers import assign, case_row, import_cases, make_staff
from tests.conftest import FIXTURES
from tests.factories import PASSWORD

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
PAYMENTS = EXPECTED["payments_zh.csv"]

CASE = "GBK2411000001"
BALANCE = Decimal("255849.68")
# Above the team-lead limit (10,000.00) and within the manager's (100,000.00), so
# the team lead's approval passes the request up and the manager's completes it.
DISCOUNT = Decimal("20000.00")
# Height in pixels of a header row and of a data row in Streamlit's data grid.
GRID_ROW_PX = 35


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def main_area(page: Page):
    return page.get_by_test_id("stMain")


def log_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="登录 Recova")).to_be_visible()
    page.get_by_label("用户名", exact=True).fill(username)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(sidebar(page).get_by_role("button", name="退出登录")).to_be_visible()


def log_out(page: Page) -> None:
    sidebar(page).get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", name="登录 Recova")).to_be_visible()


def open_page(page: Page, link: str, heading: str) -> None:
    sidebar(page).get_by_role("link", name=link).click()
    expect(main_area(page).get_by_role("heading", name=heading)).to_be_visible()


def metric_value(page: Page, label: str):
    metric = page.get_by_test_id("stMetric").filter(has_text=label)
    return metric.get_by_test_id("stMetricValue")


def select_first_grid_row(page: Page) -> None:
    """Tick the selection box of the first row of the first data grid.

    The grid is drawn on a canvas, so the click goes to the row-marker column by
    position: below the header row, at the left edge.
    """
    grid = main_area(page).get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + GRID_ROW_PX * 1.5)


@pytest.mark.browser
def test_settlement_through_team_lead_and_manager(
    page: Page, app_url: str, session, screenshot
):
    import_cases(session)
    staff = make_staff(session)
    assign(session, CASE, staff.collector)
    page.goto(app_url)

    # The collector files the request from the case file.
    log_in(page, "cole")
    open_page(page, "案件列表", "案件列表")
    search = main_area(page).get_by_role("textbox", name="搜索")
    search.fill(CASE)
    search.press("Enter")
    expect(main_area(page).get_by_text("找到 1 件案件", exact=False)).to_be_visible()
    select_first_grid_row(page)
    expect(
        main_area(page).get_by_role("heading", name="减免与核销申请")
    ).to_be_visible()
    main_area(page).get_by_role("textbox", name="金额（元）").fill(f"{DISCOUNT}")
    main_area(page).get_by_role("textbox", name="原因").fill(
        "债务人失业，同意一次性结清"
    )
    screenshot("01-request-form")
    main_area(page).get_by_role("button", name="提交申请").click()
    expect(
        main_area(page).get_by_text(re.compile(r"已提交，等待组长审批"))
    ).to_be_visible()
    screenshot("02-request-filed")
    log_out(page)

    # The team lead approves; the amount is above their limit, so it goes up.
    log_in(page, "lee")
    open_page(page, "减免核销审批", "减免核销审批")
    expect(main_area(page).get_by_text("案件 GBK2411000001 的减免申请")).to_be_visible()
    expect(
        main_area(page).get_by_role("heading", name=re.compile(CASE))
    ).to_be_visible()
    screenshot("03-team-lead-queue")
    main_area(page).get_by_role("button", name="批准").click()
    expect(
        main_area(page).get_by_text("已批准。申请现在等待催收主管审批。")
    ).to_be_visible()
    expect(main_area(page).get_by_text("没有等待您审批的申请。")).to_be_visible()
    log_out(page)

    # The manager finds it with the team lead's decision and completes it.
    log_in(page, "mona")
    open_page(page, "减免核销审批", "减免核销审批")
    expect(
        main_area(page).get_by_role("heading", name=re.compile(CASE))
    ).to_be_visible()
    screenshot("04-manager-queue")
    main_area(page).get_by_role("button", name="批准").click()
    expect(main_area(page).get_by_text("申请当前状态：已批准。")).to_be_visible()
    screenshot("05-approved")

    assert case_row(session, CASE).balance == BALANCE - DISCOUNT


@pytest.mark.browser
def test_finance_imports_payment_file(page: Page, app_url: str, session, screenshot):
    import_cases(session)
    make_staff(session)
    page.goto(app_url)

    log_in(page, "fay")
    open_page(page, "回款管理", "回款管理")
    page.locator(
        '[data-testid="stFileUploader"] input[type="file"]'
    ).first.set_input_files(FIXTURES / "payments_zh.csv")
    expect(
        main_area(page).get_by_text("待入账或待匹配 6 行，拒绝 0 行，文件内重复 1 行。")
    ).to_be_visible()
    screenshot("01-preview")

    import_button = main_area(page).get_by_role("button", name="导入回款")
    import_button.click()
    expect(main_area(page).get_by_role("heading", name="回款导入报告")).to_be_visible()
    expect(metric_value(page, "已入账")).to_have_text(str(PAYMENTS["posted"]))
    expect(metric_value(page, "未匹配")).to_have_text("1")
    expect(metric_value(page, "重复跳过")).to_have_text("1")
    expect(import_button).to_be_disabled()
    screenshot("02-report")

    for case_no, balance in PAYMENTS["balance_after"].items():
        assert case_row(session, case_no).balance == Decimal(balance), case_no
