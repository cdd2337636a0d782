"""The KPI page in Chromium, read by a manager of a small demo company.

The manager reads the figures in Chinese and then switches to English. Screenshots
of both go to tests/artifacts/.
"""

from playwright.sync_api import Page, expect

from services.demo import DEMO_PASSWORD, DemoRequest, build_demo

SMALL_COMPANY = DemoRequest(cases=150, months=3, seed=11)


def main_area(page: Page):
    return page.get_by_role("main")


def expect_settled(page: Page) -> None:
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.get_by_test_id("stException")).to_have_count(0)


def log_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="登录 Recova")).to_be_visible()
    form = main_area(page)
    form.get_by_role("textbox", name="用户名", exact=True).fill(username)
    form.get_by_role("textbox", name="密码", exact=True).fill(DEMO_PASSWORD)
    form.get_by_role("button", name="登录", exact=True).click()


def metric_card(page: Page, label: str):
    label_element = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_element)


def test_manager_reads_kpis_in_both_languages(page, app_url, session, screenshot):
    build_demo(session=session, request=SMALL_COMPANY)
    page.goto(app_url)
    log_in(page, "demo.manager")

    expect(main_area(page).get_by_role("heading", name="指标看板")).to_be_visible()
    expect(metric_card(page, "回收率")).to_be_visible()
    expect(metric_card(page, "迁徙率 M1→M2")).to_be_visible()
    expect_settled(page)
    page.get_by_test_id("stPlotlyChart").first.wait_for()
    screenshot("zh")

    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("combobox", name="语言").click()
    page.get_by_role("option", name="English").click()
    expect(main_area(page).get_by_role("heading", name="KPIs")).to_be_visible()
    expect(metric_card(page, "Recovery rate")).to_be_visible()
    expect(metric_card(page, "First-contact SLA")).to_be_visible()
    expect_settled(page)
    page.get_by_test_id("stPlotlyChart").first.wait_for()
    screenshot("en")

    main_area(page).get_by_role("tab", name="Roll rates").click()
    expect(main_area(page).get_by_text("Share of each starting bucket")).to_be_visible()
    expect_settled(page)
    screenshot("en-roll")
