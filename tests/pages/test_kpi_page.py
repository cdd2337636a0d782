"""The KPI page on the hand-built portfolio, driven through AppTest."""

from datetime import date

from streamlit.testing.v1 import AppTest

from recova.i18n import format_money, translate
from services import auth
from tests.conftest import ROOT
from tests.factories import PASSWORD
from tests.kpi_portfolio import build_portfolio

APP = str(ROOT / "app.py")


def open_kpi_page(session, username: str) -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/kpi.py").run()
    assert not at.exception
    at.date_input(key="kpi_from").set_value(date(2026, 10, 1))
    at.date_input(key="kpi_to").set_value(date(2026, 10, 31)).run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def label(figure_id: str, language: str = "zh-CN") -> str:
    return translate(f"kpi.figure.{figure_id}", language)


def test_page_shows_figures_to_the_cent(session):
    build_portfolio(session)
    at = open_kpi_page(session, "mia")
    shown = metrics(at)
    assert shown[label("recovery_rate")] == "25.00%"
    assert shown[label("recovered")] == format_money("2500.00", "zh-CN")
    assert shown[label("case_recovery_rate")] == "50.00%"
    assert shown[label("avg_cycle_days")] == "39.00"
    assert shown[label("contact_rate")] == "66.67%"
    assert shown[label("ptp_kept_rate")] == "50.00%"
    assert shown[label("ptp_kept_amount_rate")] == "76.92%"
    assert shown[label("roll_rate")] == "33.33%"
    assert shown[label("sla_compliance")] == "50.00%"


def test_metric_help_names_formula(session):
    build_portfolio(session)
    at = open_kpi_page(session, "mia")
    recovery = next(m for m in at.metric if m.label == label("recovery_rate"))
    assert recovery.help == translate("kpi.formula.recovery_rate", "zh-CN")


def test_drill_down_lists_cases(session):
    build_portfolio(session)
    at = open_kpi_page(session, "mia")
    at.selectbox(key="kpi_drill_figure_zh-CN").set_value("recovery_rate").run()
    frames = [frame.value for frame in at.dataframe]
    case_column = translate("report.column.case_no", "zh-CN")
    drill = next(frame for frame in frames if case_column in frame.columns)
    assert list(drill[case_column]) == ["B", "C"]


def test_collector_page_hides_team_filters(session):
    ids = build_portfolio(session)
    at = open_kpi_page(session, "ann")
    keys = {box.key for box in at.selectbox}
    assert "kpi_filter_collector_zh-CN" not in keys
    assert "kpi_filter_team_zh-CN" not in keys
    assert "kpi_filter_province_zh-CN" in keys
    assert metrics(at)[label("recovered")] == format_money("2500.00", "zh-CN")
    assert ids["ann"]


def test_period_in_wrong_order_shows_error(session):
    build_portfolio(session)
    at = open_kpi_page(session, "mia")
    at.date_input(key="kpi_from").set_value(date(2026, 11, 1)).run()
    assert at.error
    assert not at.metric


def test_auditor_gets_statement_tab(session):
    from tests.factories import make_user

    build_portfolio(session)
    make_user(session, "aud", role="auditor")
    at = open_kpi_page(session, "aud")
    labels = [tab.label for tab in at.tabs]
    assert translate("kpi.tab.statement", "zh-CN") in labels
    assert at.get("download_button")


def test_collector_gets_no_statement_tab(session):
    build_portfolio(session)
    at = open_kpi_page(session, "ann")
    labels = [tab.label for tab in at.tabs]
    assert translate("kpi.tab.statement", "zh-CN") not in labels
