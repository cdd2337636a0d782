"""The demo company: built through the services, deterministic for a seed."""

import pytest
from sqlalchemy import text

from recova.errors import InvalidInput
from services.demo import DemoRequest, build_demo
from tests.conftest import _empty_tables

SMALL = DemoRequest(cases=60, months=2, seed=3)


def fingerprint(session) -> tuple:
    return session.execute(
        text(
            "SELECT (SELECT count(*) FROM cases), "
            "(SELECT count(*) FROM contact_attempts), "
            "(SELECT coalesce(sum(amount), 0) FROM payments), "
            "(SELECT count(*) FROM promises), "
            "(SELECT string_agg(case_no || ':' || status || ':' || balance, ',' "
            "ORDER BY case_no) FROM cases)"
        )
    ).one()


def test_demo_builds_a_company(session):
    messages = []
    summary = build_demo(session=session, request=SMALL, progress=messages.append)
    counts = session.execute(
        text(
            "SELECT (SELECT count(*) FROM users WHERE role = 'collector'), "
            "(SELECT count(*) FROM teams), (SELECT count(*) FROM batches), "
            "(SELECT count(*) FROM cases WHERE collector_id IS NULL), "
            "(SELECT count(*) FROM snapshot_days), (SELECT count(*) FROM kpi_daily)"
        )
    ).one()
    assert counts[0] == 20
    assert counts[1] == 3
    assert counts[2] == 2
    assert counts[3] == 0
    assert counts[4] > 28
    assert counts[5] > 0
    assert summary.cases == 60
    assert summary.attempts > 60
    assert summary.payments > 0
    assert "users and teams" in messages
    assert "demo-pass-2026" in summary.describe()


def test_demo_same_seed_same_company(session, engine):
    build_demo(session=session, request=SMALL)
    first = fingerprint(session)
    session.close()
    _empty_tables(engine)
    build_demo(session=session, request=SMALL)
    assert fingerprint(session) == first


def test_demo_needs_empty_database(session):
    build_demo(session=session, request=SMALL)
    with pytest.raises(InvalidInput):
        build_demo(session=session, request=SMALL)
