"""The intake flow in Chromium: first-run setup, login, import, report, language."""

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from db.models import Batch, Case
from services import auth
from tests.factories import PASSWORD, make_user

XLSX = Path(__file__).resolve().parents[1] / "fixtures" / "cases_zh.xlsx"
# cases_zh.xlsx has 30 data rows. Row 7 contains an ID number stored as a number, which
# lost its last digits, and row 13 has no overdue date, so 28 rows are imported.
DATA_ROWS = 30
IMPORTED = 28
REJECTED_ROWS = ["7", "13"]
ADMIN = "boss"


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def main_area(page: Page) -> Locator:
    return page.get_by_role("main")


def expect_script_finished(page: Page) -> None:
    # Streamlit 1.67 sets data-test-script-state on its root element, and
    # "notRunning" means the last script run has finished.
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")


def expect_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def scroll_to_top_of(locator: Locator) -> None:
    # The main area scrolls inside its own container, so a screenshot shows only
    # the part of the page that is scrolled into view.
    locator.evaluate("element => element.scrollIntoView({block: 'start'})")


def metric_value(page: Page, label: str) -> Locator:
    label_element = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    card = page.get_by_test_id("stMetric").filter(has=label_element)
    return card.get_by_test_id("stMetricValue")


def choose_option(page: Page, scope: Locator, label: str, option: str) -> None:
    scope.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def grid_column(scope: Locator, column: int) -> list[str]:
    """Return the texts in one column of the st.dataframe inside `scope`.

    st.dataframe draws its cells on a canvas and copies the rows in view into a
    table for screen readers, with 1-based `aria-colindex` values. That table is
    not visible, so role locators skip it and a CSS locator reads it.
    """
    cells = scope.locator(f'[role="gridcell"][aria-colindex="{column}"]')
    return [cell.strip() for cell in cells.all_inner_texts()]


def create_first_admin(page: Page) -> None:
    expect(page.get_by_role("heading", name="欢迎使用 Recova")).to_be_visible()
    form = main_area(page)
    form.get_by_role("textbox", name="管理员用户名").fill(ADMIN)
    form.get_by_role("textbox", name="显示名称").fill("管理员")
    form.get_by_role("textbox", name="密码", exact=True).fill(PASSWORD)
    form.get_by_role("textbox", name="再次输入密码").fill(PASSWORD)
    form.get_by_role("button", name="创建管理员并登录").click()


def log_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="登录 Recova")).to_be_visible()
    form = main_area(page)
    form.get_by_role("textbox", name="用户名", exact=True).fill(username)
    form.get_by_role("textbox", name="密码", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="登录", exact=True).click()


def expect_logged_in(page: Page, user_line: str, first_page: str = "指标看板") -> None:
    """Check the user line and the role's first page: KPIs for managers and admins,
    the queue for collectors."""
    expect(sidebar(page).get_by_text(user_line, exact=True)).to_be_visible()
    expect(main_area(page).get_by_role("heading", name=first_page)).to_be_visible()
    expect_script_finished(page)
    expect_no_exception(page)


def count_rows(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.browser
def test_setup_login_import_report(page: Page, app_url: str, session, screenshot):
    assert auth.needs_first_admin(session=session)
    page.goto(app_url)

    # First-run setup creates the admin and logs it in.
    create_first_admin(page)
    expect_logged_in(page, f"{ADMIN} · 系统管理员")
    screenshot("01-admin-created")

    # Log out, then log in again through the login form.
    sidebar(page).get_by_role("button", name="退出登录").click()
    log_in(page, ADMIN)
    expect_logged_in(page, f"{ADMIN} · 系统管理员")

    # Intake: a new creditor and the Chinese spreadsheet.
    sidebar(page).get_by_role("link", name="案件导入").click()
    expect(main_area(page).get_by_role("heading", name="案件导入")).to_be_visible()
    choose_option(page, main_area(page), "委托方", "新委托方…")
    name_box = main_area(page).get_by_role("textbox", name="新委托方名称")
    name_box.fill("浏览器测试银行")
    name_box.press("Enter")
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.set_input_files(XLSX)

    import_button = main_area(page).get_by_role("button", name="导入", exact=True)
    expect(import_button).to_be_enabled()
    expect(main_area(page).get_by_text(f"数据 {DATA_ROWS} 行")).to_be_visible()
    expect(main_area(page).get_by_text(f"可导入 {IMPORTED} 行")).to_be_visible()
    expect_script_finished(page)
    expect_no_exception(page)
    screenshot("02-preview")

    # Import and read the report.
    import_button.click()
    report_heading = main_area(page).get_by_role("heading", name="导入报告")
    expect(report_heading).to_be_visible()
    expect(metric_value(page, "已导入")).to_have_text(str(IMPORTED))
    expect(metric_value(page, "已拒绝")).to_have_text(str(len(REJECTED_ROWS)))
    rejected_panel = main_area(page).get_by_role("tabpanel", name="被拒绝的行")
    expect(rejected_panel.locator('[role="gridcell"]').first).to_be_attached()
    assert grid_column(rejected_panel, column=1) == REJECTED_ROWS
    expect_script_finished(page)
    expect_no_exception(page)
    scroll_to_top_of(report_heading)
    screenshot("03-report-zh")

    # The kept report disables Import, so the file cannot be imported twice.
    expect(import_button).to_be_disabled()
    assert count_rows(session, Batch) == 1
    assert count_rows(session, Case) == IMPORTED

    # Switching the language redraws the same report in English.
    choose_option(page, sidebar(page), "语言", "English")
    report_heading = main_area(page).get_by_role("heading", name="Import report")
    expect(report_heading).to_be_visible()
    expect(metric_value(page, "Imported")).to_have_text(str(IMPORTED))
    expect(metric_value(page, "Rejected")).to_have_text(str(len(REJECTED_ROWS)))
    expect(main_area(page).get_by_role("tab", name="Rejected rows")).to_be_visible()
    expect(sidebar(page).get_by_role("link", name="Case intake")).to_be_visible()
    expect(sidebar(page).get_by_role("button", name="Log out")).to_be_visible()
    expect_script_finished(page)
    expect_no_exception(page)
    scroll_to_top_of(report_heading)
    screenshot("04-report-en")


@pytest.mark.browser
def test_collector_has_no_intake_page(page: Page, app_url: str, session, screenshot):
    make_user(session, "ann", role="collector")
    page.goto(app_url)

    log_in(page, "ann")
    expect_logged_in(page, "ann · 催收员", first_page="我的待办")

    nav = sidebar(page).get_by_role("navigation")
    expect(nav.get_by_role("link", name="案件列表")).to_be_visible()
    expect(nav.get_by_role("link", name="我的账户")).to_be_visible()
    expect(nav.get_by_role("link", name="案件导入")).to_have_count(0)
    expect(nav.get_by_role("link", name="用户与团队")).to_have_count(0)
    screenshot("01-collector-navigation")
