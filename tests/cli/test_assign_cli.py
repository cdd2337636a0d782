"""`recova assign --auto`, run as a subprocess against the test database."""

import json
import os
import subprocess
import sys

from sqlalchemy import func, select

from db.models import Case
from tests.case_factories import make_batch, make_case, make_collector


def recova(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "RECOVA_LANGUAGE": "en"}
    return subprocess.run(
        [sys.executable, "-m", "recova.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def two_collectors_three_cases(session):
    make_collector(session, "ann", regions=["广东"])
    make_collector(session, "bob", regions=["广东"])
    batch = make_batch(session, "CLI Bank")
    make_case(session, batch, "C1", total_due="1200.50")
    make_case(session, batch, "C2", total_due="800.00")
    make_case(session, batch, "FAR", province="西藏")
    session.commit()


def test_assign_json(session, database_url):
    two_collectors_three_cases(session)
    result = recova(database_url, "assign", "--auto", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is False
    assert data["assigned"] == {"C1": "ann", "C2": "bob"}
    assert data["unassigned"] == {"FAR": "no_collector_for_region"}
    assert data["collectors"]["ann"]["open_cases"] == 1
    assert data["collectors"]["ann"]["balance"] == "1200.50"
    assert data["collectors"]["bob"]["balance"] == "800.00"
    statuses = session.scalars(select(Case.status).order_by(Case.case_no)).all()
    assert statuses == ["assigned", "assigned", "new"]


def test_assign_dry_run_saves_nothing(session, database_url):
    two_collectors_three_cases(session)
    result = recova(database_url, "assign", "--auto", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["assigned"] == {"C1": "ann", "C2": "bob"}
    assigned = session.scalar(
        select(func.count()).select_from(Case).where(Case.status != "new")
    )
    assert assigned == 0


def test_assign_text_output(session, database_url):
    two_collectors_three_cases(session)
    result = recova(database_url, "assign", "--auto")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "2 assigned, 1 unassigned" in lines
    assert "  C1 -> ann" in lines
    assert "  FAR: No collector serves the province" in lines
    assert any(
        line.startswith("  ann: 1 open cases, balance 1200.50") for line in lines
    )


def test_assign_unknown_creditor(session, database_url):
    result = recova(database_url, "assign", "--auto", "--creditor", "Nobody", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "creditor_not_found"


def test_assign_without_auto_is_usage_error(database_url):
    result = recova(database_url, "assign")
    assert result.returncode == 2
    assert "--auto" in result.stderr
