"""A collector's morning in Chromium: log in, work three cases from the queue with
"Next case", record an attempt on each, and record a promise on the last one."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from db.models import Debtor
from db.models_followup import ContactAttempt, Promise
from tests.case_factories import make_batch, make_collector
from tests.factories import PASSWORD
from tests.services.test_queue_support import queued_case, seed_followup

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(ZONE)
# Inside the cn contact window and in the past, whatever the hour of the run.
ATTEMPT_DAY = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
FOLLOW_UP_DAY = (NOW + timedelta(days=3)).strftime("%Y-%m-%d")
PROMISE_DAY = (NOW + timedelta(days=5)).strftime("%Y-%m-%d")


def main_area(page: Page) -> Locator:
    return page.get_by_role("main")


def expect_settled(page: Page) -> None:
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.get_by_test_id("stException")).to_have_count(0)


def choose(page: Page, label: str, option: str) -> None:
    box = main_area(page).get_by_role("combobox", name=label)
    box.click()
    if not page.get_by_role("listbox").is_visible():
        box.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()


def fill_date(page: Page, label: str, value: str) -> None:
    # Streamlit's date box is not tied to its label, so find it through the widget.
    widget = main_area(page).get_by_test_id("stDateInput").filter(has_text=label)
    box = widget.locator("input:visible").first
    box.fill(value)
    box.press("Tab")


def cases_for_ann(session) -> None:
    seed_followup(session)
    ann = make_collector(session, "ann", team="North")
    batch = make_batch(session)
    for number in range(3):
        case = queued_case(
            session,
            batch,
            ann,
            f"MORNING{number}",
            NOW,
            next_action_at=NOW - timedelta(hours=3 - number),
        )
        session.get(Debtor, case.debtor_id).phones = [f"1381234567{number}"]
    session.commit()


def record_attempt(page: Page, note: str) -> None:
    main_area(page).get_by_role("tab", name="催记").click()
    choose(page, "结果", "无人接听")
    main_area(page).get_by_role("textbox", name="备注").fill(note)
    fill_date(page, "催记日期", ATTEMPT_DAY)
    fill_date(page, "下次跟进", FOLLOW_UP_DAY)
    main_area(page).get_by_role("button", name="保存催记").click()
    expect(main_area(page).get_by_text("催记已保存")).to_be_visible()
    expect_settled(page)


def test_collector_works_queue(page: Page, app_url: str, session, engine, screenshot):
    cases_for_ann(session)
    page.goto(app_url)
    form = main_area(page)
    form.get_by_role("textbox", name="用户名", exact=True).fill("ann")
    form.get_by_role("textbox", name="密码", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="登录", exact=True).click()
    expect(main_area(page).get_by_role("heading", name="我的待办")).to_be_visible()
    expect_settled(page)

    opened = []
    for number in range(3):
        page.get_by_test_id("stSidebar").get_by_role("link", name="我的待办").click()
        expect_settled(page)
        main_area(page).get_by_role("button", name="下一件").click()
        heading = main_area(page).get_by_role("heading", name="案件 MORNING")
        expect(heading).to_be_visible()
        opened.append(heading.inner_text().split()[1])
        record_attempt(page, f"第 {number + 1} 个案件，无人接听")

    assert sorted(opened) == ["MORNING0", "MORNING1", "MORNING2"]
    assert session.scalar(select(func.count(ContactAttempt.id))) == 3

    main_area(page).get_by_role("tab", name="承诺与分期").click()
    main_area(page).get_by_role("textbox", name="承诺金额").fill("500")
    fill_date(page, "承诺还款日", PROMISE_DAY)
    main_area(page).get_by_role("button", name="保存承诺").click()
    expect(main_area(page).get_by_text("承诺已保存")).to_be_visible()
    expect_settled(page)
    screenshot("promise")

    session.expire_all()
    promise = session.scalar(select(Promise))
    assert promise.amount == 500
