"""`recova kpi` and `recova snapshot`, run as subprocesses against the test database."""

import json

from sqlalchemy import text

from tests.cli.test_cli import recova
from tests.kpi_portfolio import EXPECTED, build_portfolio

OCTOBER = ("--from", "2026-10-01", "--to", "2026-10-31")


def test_kpi_json_matches_paper(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "kpi", *OCTOBER, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["recovered"] == "2500.00"
    assert data["recovery_rate"] == 0.25
    for figure_id, expected in EXPECTED.items():
        value = data[figure_id]
        if figure_id == "recovered":
            assert value == f"{expected:.2f}", figure_id
        else:
            assert value == float(expected), figure_id
    assert data["figures"]["recovery_rate"]["previous"] == 0.0
    assert data["figures"]["recovery_rate"]["formula"] == "recovery_rate"


def test_kpi_breakdown_by_province(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "kpi", *OCTOBER, "--by", "province", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)["breakdown"]["rows"]}
    assert rows["广东"]["recovered"] == "2500.00"
    assert rows["广东"]["recovery_rate"] == 0.4167
    assert rows["浙江"]["recovery_rate"] == 0.0


def test_kpi_creditor_filter(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "kpi", *OCTOBER, "--creditor", "Hand Bank", "--json")
    assert json.loads(result.stdout)["recovery_rate"] == 0.25
    missing = recova(database_url, "kpi", *OCTOBER, "--creditor", "Nobody", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"] == "creditor_not_found"


def test_kpi_text_output(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "kpi", *OCTOBER)
    assert result.returncode == 0, result.stderr
    assert "Recovery rate: 25.00%" in result.stdout


def test_kpi_rejects_reversed_period(engine, database_url):
    result = recova(database_url, "kpi", "--from", "2026-10-31", "--to", "2026-10-01")
    assert result.returncode == 2


def test_snapshot_of_past_day_rejected(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "snapshot", "--date", "2026-10-05")
    assert result.returncode == 1
    assert "2026-10-31" in result.stderr


def test_snapshot_command_refreshes_sums(session, database_url):
    build_portfolio(session)
    result = recova(database_url, "snapshot", "--date", "2026-10-31")
    assert result.returncode == 0, result.stderr
    days = session.scalar(text("SELECT count(DISTINCT day) FROM kpi_daily"))
    assert days > 0
