"""KPI figures of the hand-built portfolio, live, from the daily sums and in polars."""

from datetime import date
from decimal import Decimal

import pytest

from recova.errors import InvalidInput
from services import kpi, snapshots
from services.actors import Actor
from tests.kpi_portfolio import EXPECTED, OCTOBER, build_portfolio

MANAGER = Actor(id=None, username="mia", role="manager")


@pytest.fixture
def portfolio(session):
    return build_portfolio(session)


def assert_expected(values):
    for figure_id, expected in EXPECTED.items():
        assert values[figure_id] == expected, figure_id


def test_live_figures_match_paper(session, portfolio):
    result = kpi.kpis(session=session, actor=MANAGER, filters=OCTOBER)
    assert result.source == "live"
    assert_expected({key: fig.value for key, fig in result.figures.items()})


def test_aggregated_figures_match_paper(session, portfolio):
    snapshots.refresh_kpis(session=session, day=date(2026, 10, 31))
    result = kpi.kpis(session=session, actor=MANAGER, filters=OCTOBER)
    assert result.source == "aggregates"
    assert_expected({key: fig.value for key, fig in result.figures.items()})


def test_polars_agrees_with_sql(session, portfolio):
    values = kpi.kpis_polars(session=session, actor=MANAGER, filters=OCTOBER)
    assert_expected(values)
    sql = kpi.kpis(session=session, actor=MANAGER, filters=OCTOBER)
    for figure_id in kpi.FIGURE_IDS:
        assert values[figure_id] == sql.figures[figure_id].value, figure_id


def test_previous_period_and_change(session, portfolio):
    result = kpi.kpis(session=session, actor=MANAGER, filters=OCTOBER)
    recovery = result.figures["recovery_rate"]
    assert recovery.previous == Decimal("0.0000")
    assert recovery.change == Decimal("0.2500")
    assert recovery.formula == "kpi.formula.recovery_rate"


def test_roll_matrix_shares(session, portfolio):
    result = kpi.kpis(session=session, actor=MANAGER, filters=OCTOBER)
    cells = {(row["from_bucket"], row["to_state"]): row for row in result.roll_matrix}
    assert cells[("M1", "M2")]["share"] == Decimal("0.3333")
    assert cells[("M1", "paid")]["share"] == Decimal("0.6667")
    assert cells[("M2", "M3")]["balance"] == Decimal("3000.00")


def test_breakdown_by_province_live_and_stored(session, portfolio):
    live = kpi.breakdown(session=session, actor=MANAGER, filters=OCTOBER, by="province")
    snapshots.refresh_kpis(session=session, day=date(2026, 10, 31))
    stored = kpi.breakdown(
        session=session, actor=MANAGER, filters=OCTOBER, by="province"
    )
    assert live.sort("key").equals(stored.sort("key"))
    rows = {row["key"]: row for row in stored.iter_rows(named=True)}
    assert rows["广东"]["recovery_rate"] == Decimal("0.4167")
    assert rows["浙江"]["recovered"] == Decimal("0.00")


def test_filtered_live_equals_stored(session, portfolio):
    filters = OCTOBER.model_copy(update={"collector_id": portfolio["ann"]})
    live = kpi.kpis(session=session, actor=MANAGER, filters=filters)
    snapshots.refresh_kpis(session=session, day=date(2026, 10, 31))
    stored = kpi.kpis(session=session, actor=MANAGER, filters=filters)
    assert stored.source == "aggregates"
    for figure_id in kpi.FIGURE_IDS:
        assert live.figures[figure_id].value == stored.figures[figure_id].value


def test_collector_sees_only_own_figures(session, portfolio):
    other = Actor(id=portfolio["ann"] + 100, username="zoe", role="collector")
    result = kpi.kpis(session=session, actor=other, filters=OCTOBER)
    assert result.figures["recovered"].value == Decimal("0.00")
    assert result.figures["contact_rate"].value is None
    own = Actor(id=portfolio["ann"], username="ann", role="collector")
    mine = kpi.kpis(session=session, actor=own, filters=OCTOBER)
    assert mine.figures["recovered"].value == Decimal("2500.00")


def test_drill_down_lists_paying_cases(session, portfolio):
    frame = kpi.drill_down(
        session=session, actor=MANAGER, filters=OCTOBER, figure="recovery_rate"
    )
    assert frame.get_column("case_no").to_list() == ["B", "C"]
    assert frame.get_column("recovered").to_list() == [
        Decimal("2000.00"),
        Decimal("500.00"),
    ]


def test_drill_down_roll_cases(session, portfolio):
    frame = kpi.drill_down(
        session=session, actor=MANAGER, filters=OCTOBER, figure="roll_rate"
    )
    states = dict(zip(frame["case_no"], frame["to_state"], strict=True))
    assert states == {"A": "M2", "B": "paid", "C": "M3"}


def test_unknown_breakdown_rejected(session, portfolio):
    with pytest.raises(InvalidInput):
        kpi.breakdown(session=session, actor=MANAGER, filters=OCTOBER, by="colour")


def test_vintage_curve_of_september_batch(session, portfolio):
    frame = kpi.vintage(session=session, actor=MANAGER, filters=OCTOBER)
    september = frame.filter(frame["batch"] == "September")
    assert september["recovery_rate"].to_list() == [0.0, 0.4167]


def test_previous_of_whole_months_is_months():
    quarter = kpi.KpiFilter(date_from=date(2026, 7, 1), date_to=date(2026, 9, 30))
    previous = quarter.previous()
    assert (previous.date_from, previous.date_to) == (
        date(2026, 4, 1),
        date(2026, 6, 30),
    )


def test_previous_of_days_is_same_length():
    days = kpi.KpiFilter(date_from=date(2026, 10, 5), date_to=date(2026, 10, 14))
    previous = days.previous()
    assert (previous.date_from, previous.date_to) == (
        date(2026, 9, 25),
        date(2026, 10, 4),
    )


def test_period_in_wrong_order_rejected():
    with pytest.raises(ValueError):
        kpi.KpiFilter(date_from=date(2026, 10, 5), date_to=date(2026, 10, 1))


def test_team_lead_sees_team_figures(session, portfolio):
    from sqlalchemy import text

    from recova.errors import PermissionDenied

    team_id = session.scalar(text("SELECT team_id FROM users WHERE username = 'ann'"))
    lead = Actor(id=None, username="lee", role="team_lead", team_id=team_id)
    result = kpi.kpis(session=session, actor=lead, filters=OCTOBER)
    assert result.figures["recovered"].value == Decimal("2500.00")
    other = Actor(id=None, username="ola", role="team_lead", team_id=team_id + 1)
    assert kpi.kpis(session=session, actor=other, filters=OCTOBER).figures[
        "recovered"
    ].value == Decimal("0.00")
    homeless = Actor(id=None, username="hal", role="team_lead", team_id=None)
    with pytest.raises(PermissionDenied):
        kpi.kpis(session=session, actor=homeless, filters=OCTOBER)


def test_owner_breakdowns_live_equal_stored(session, portfolio):
    from sqlalchemy import text

    team_id = session.scalar(text("SELECT team_id FROM users WHERE username = 'ann'"))
    ann = Actor(id=portfolio["ann"], username="ann", role="collector")
    lead = Actor(id=None, username="lee", role="team_lead", team_id=team_id)
    views = [(ann, "province"), (ann, "batch"), (lead, "collector"), (lead, "bucket")]
    live = [
        kpi.breakdown(session=session, actor=actor, filters=OCTOBER, by=by)
        for actor, by in views
    ]
    snapshots.refresh_kpis(session=session, day=date(2026, 10, 31))
    assert kpi.stored_plan({"collector": str(ann.id)}, "province") is not None
    assert kpi.stored_plan({"team": str(team_id)}, "collector") is not None
    for (actor, by), before in zip(views, live, strict=True):
        after = kpi.breakdown(session=session, actor=actor, filters=OCTOBER, by=by)
        assert before.sort("key").equals(after.sort("key")), (actor.role, by)
    rows = {row["key"]: row for row in live[0].iter_rows(named=True)}
    assert rows["广东"]["recovered"] == Decimal("2500.00")


def test_grade_figures_run_live_with_current_grades():
    # Stored sums keep the grade a case had when they were taken; by grade, the
    # population and the events must both use today's grade.
    from services.kpi import stored_plan

    assert stored_plan({}, "grade") is None
    assert stored_plan({"grade": "A"}, None) is None
    assert stored_plan({}, "province") is not None
