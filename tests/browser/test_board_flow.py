"""The assignment board in Chromium: import a file, preview and apply automatic
assignment to three collectors, then reassign one case by hand."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from db.models import Case, CaseEvent, User
from tests.factories import PASSWORD, make_user

GBK = Path(__file__).resolve().parents[1] / "fixtures" / "cases_zh_gbk.csv"
# cases_zh_gbk.csv has 40 data rows; rows 9, 11, 13 and 19 are rejected.
IMPORTED = 36
COLLECTORS = ("ann", "bob", "cid")


def main_area(page: Page) -> Locator:
    return page.get_by_role("main")


def expect_settled(page: Page) -> None:
    # Streamlit 1.67 marks its root element "notRunning" once a script run ends.
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.get_by_test_id("stException")).to_have_count(0)


def metric_value(page: Page, label: str) -> Locator:
    label_element = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    card = page.get_by_test_id("stMetric").filter(has=label_element)
    return card.get_by_test_id("stMetricValue")


def choose(page: Page, scope: Locator, label: str, option: str | re.Pattern) -> None:
    box = scope.get_by_role("combobox", name=label)
    box.click()
    # A click that first scrolls the box into view can leave the list closed;
    # the arrow key opens it either way.
    if not page.get_by_role("listbox").is_visible():
        box.press("ArrowDown")
    page.get_by_role("option", name=option).click()


def log_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="登录 Recova")).to_be_visible()
    form = main_area(page)
    form.get_by_role("textbox", name="用户名", exact=True).fill(username)
    form.get_by_role("textbox", name="密码", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="登录", exact=True).click()
    # A manager's first page is the KPI page.
    expect(main_area(page).get_by_role("heading", name="指标看板")).to_be_visible()
    expect_settled(page)


def import_gbk_file(page: Page) -> None:
    page.get_by_test_id("stSidebar").get_by_role("link", name="案件导入").click()
    expect(main_area(page).get_by_role("heading", name="案件导入")).to_be_visible()
    choose(page, main_area(page), "委托方", "新委托方…")
    name_box = main_area(page).get_by_role("textbox", name="新委托方名称")
    name_box.fill("分案测试银行")
    name_box.press("Enter")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        GBK
    )
    import_button = main_area(page).get_by_role("button", name="导入", exact=True)
    expect(import_button).to_be_enabled()
    import_button.click()
    expect(metric_value(page, "已导入")).to_have_text(str(IMPORTED))
    expect_settled(page)


def open_counts(session) -> dict[str, int]:
    session.expire_all()
    rows = session.execute(
        select(User.username, func.count(Case.id))
        .join(Case, Case.collector_id == User.id)
        .where(Case.status == "assigned")
        .group_by(User.username)
    ).all()
    return dict(rows)


@pytest.mark.browser
def test_assign_and_reassign_in_browser(page: Page, app_url: str, session, screenshot):
    make_user(session, "mia", role="manager")
    for name in COLLECTORS:
        make_user(session, name, role="collector", skill=3)
    page.goto(app_url)
    log_in(page, "mia")
    import_gbk_file(page)

    # Preview: every imported case fits one of the three collectors.
    page.get_by_test_id("stSidebar").get_by_role("link", name="分案看板").click()
    main = main_area(page)
    expect(main.get_by_role("heading", name="分案看板")).to_be_visible()
    expect(metric_value(page, "未分配案件")).to_have_text(str(IMPORTED))
    main.get_by_role("tab", name="自动分案").click()
    main.get_by_role("button", name="预览自动分案").click()
    expect(metric_value(page, "待分配案件")).to_have_text(str(IMPORTED))
    expect(metric_value(page, "仍未分配案件")).to_have_text("0")
    expect_settled(page)
    screenshot("01-preview")
    assert open_counts(session) == {}

    # Apply the previewed plan.
    main.get_by_role("button", name="执行此分案方案").click()
    expect(main.get_by_text(f"已分配 {IMPORTED} 件，0 件仍未分配。")).to_be_visible()
    expect(metric_value(page, "未分配案件")).to_have_text("0")
    expect_settled(page)
    screenshot("02-applied")
    counts = open_counts(session)
    assert set(counts) == set(COLLECTORS)
    assert sum(counts.values()) == IMPORTED

    # Reassign one of ann's cases to bob, with a reason.
    case_no = session.scalar(
        select(Case.case_no)
        .join(User, User.id == Case.collector_id)
        .where(User.username == "ann")
        .order_by(Case.case_no)
        .limit(1)
    )
    main.get_by_role("tab", name="手动分案").click()
    choose(page, main, "案件来源", "ann (ann)")
    picker = main.get_by_role("combobox", name="要调动的案件")
    # The list of ann's cases arrives with the next script run.
    expect(picker).to_be_enabled()
    expect_settled(page)
    choose(page, main, "分配给", "bob (bob)")
    picker.click()
    picker.fill(case_no)
    page.get_by_role("option", name=re.compile(case_no)).click()
    # The case list stays open for more picks until Escape closes it.
    picker.press("Escape")
    expect(page.get_by_role("listbox")).to_have_count(0)
    main.get_by_role("textbox", name="原因").first.fill("债务人要求更换催收员")
    expect(main.get_by_text(re.compile(f"^{case_no} · "))).to_be_visible()
    main.get_by_role("button", name="分配所选案件").click()
    expect(main.get_by_text("已将 1 件案件分配给 bob。")).to_be_visible()
    expect_settled(page)
    screenshot("03-reassigned")

    session.expire_all()
    moved = session.scalar(select(Case).where(Case.case_no == case_no))
    bob = session.scalar(select(User).where(User.username == "bob"))
    assert moved.collector_id == bob.id
    reasons = session.scalars(
        select(CaseEvent.reason).where(
            CaseEvent.case_id == moved.id, CaseEvent.kind == "reassigned"
        )
    ).all()
    assert reasons == ["债务人要求更换催收员"]
    assert open_counts(session) == {
        "ann": counts["ann"] - 1,
        "bob": counts["bob"] + 1,
        "cid": counts["cid"],
    }
