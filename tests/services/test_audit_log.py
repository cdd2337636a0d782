"""The audit log: append-only in the database, and its search and export."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from db import engine as db_engine
from db.models import AuditEntry
from recova.errors import PermissionDenied
from services import approvals, audit_log
from tests.approval_helpers import (
    assign,
    case_row,
    import_cases,
    import_fixture_payments,
    make_staff,
)


@pytest.fixture
def history(session):
    """A case with a request, a decision and payments, so the log has entries."""
    import_cases(session)
    staff = make_staff(session)
    assign(session, "GBK2411000002", staff.collector)
    request = approvals.request_approval(
        session=session,
        actor=staff.collector,
        data=approvals.NewRequest(
            case_id=case_row(session, "GBK2411000002").id,
            kind="settlement",
            amount=Decimal("18.13"),
            reason="一次性结清",
        ),
    )
    approvals.approve(
        session=session,
        actor=staff.team_lead,
        decision=approvals.Decision(request_id=request.id, step=1),
    )
    import_fixture_payments(session)
    return staff


# Append-only, enforced by PostgreSQL for the application's own connection.


def app_connection():
    # The engine the app uses for DATABASE_URL, so the statements run as its user.
    return db_engine.get_engine().connect()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'edited'",
        "UPDATE audit_log SET after = NULL WHERE id = (SELECT min(id) FROM audit_log)",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
        "TRUNCATE audit_log",
    ],
)
def test_audit_rows_cannot_change(history, session, statement):
    before = session.scalar(select(func.count()).select_from(AuditEntry))
    # End the read, whose lock on audit_log would make TRUNCATE wait for it.
    session.commit()
    with app_connection() as conn:
        with pytest.raises(DBAPIError) as raised:
            conn.execute(text(statement))
        conn.rollback()
    assert isinstance(raised.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "append-only" in str(raised.value.orig)
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_audit_rows_can_be_added(history):
    with app_connection() as conn:
        conn.execute(
            text("INSERT INTO audit_log (action, entity) VALUES ('probe', 'test')")
        )
        conn.rollback()


# Search.


def actions(rows) -> list[str]:
    return [row["action"] for row in rows]


def test_search_by_case(history, session):
    rows, more = audit_log.search(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(case_no="GBK2411000002"),
    )
    assert not more
    assert set(actions(rows)) == {
        "approval_requested",
        "approval_approved",
        "case_settlement",
    }


def test_search_by_case_and_creditor(history, session):
    rows, _ = audit_log.search(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(case_no="GBK2411000002", creditor_id=999),
    )
    assert rows == []


def test_search_by_user_and_action(history, session):
    rows, _ = audit_log.search(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(username="lee", action="approval_approved"),
    )
    assert actions(rows) == ["approval_approved"]
    assert rows[0]["before"]["status"] == "pending"
    assert rows[0]["after"]["status"] == "approved"


def test_search_by_date(history, session):
    # Days are the searcher's days (Asia/Shanghai), not the server's.
    local_today = datetime.now(ZoneInfo(history.admin.timezone)).date()
    today = audit_log.AuditQuery(date_from=local_today, date_to=local_today)
    tomorrow = audit_log.AuditQuery(date_from=local_today + timedelta(days=1))
    found, _ = audit_log.search(session=session, actor=history.admin, query=today)
    none, _ = audit_log.search(session=session, actor=history.admin, query=tomorrow)
    assert "payments_imported" in actions(found)
    assert none == []


def test_search_pages(history, session):
    first, more = audit_log.search(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(page_size=2),
    )
    second, _ = audit_log.search(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(page=2, page_size=2),
    )
    assert len(first) == 2
    assert more
    assert {row["id"] for row in first}.isdisjoint(row["id"] for row in second)


def test_search_only_auditors_and_admins(history, session):
    for actor in (history.manager, history.finance, history.collector):
        with pytest.raises(PermissionDenied):
            audit_log.search(session=session, actor=actor, query=audit_log.AuditQuery())


def test_export_is_audited(history, session):
    rows = audit_log.export_entries(
        session=session,
        actor=history.auditor,
        query=audit_log.AuditQuery(case_no="GBK2411000002"),
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "audit_log_exported")
    ).one()
    assert len(rows) == 3
    assert entry.actor_name == "aud"
    assert entry.detail["rows"] == 3
    assert entry.detail["filters"]["case_no"] == "GBK2411000002"


def test_case_search_uses_index(history, session):
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        session.scalars(
            text(
                "EXPLAIN SELECT * FROM audit_log WHERE detail ? 'case_id'"
                " AND detail ->> 'case_id' IN ('2')"
            )
        )
    )
    session.rollback()
    assert "ix_audit_log_detail_case_id" in plan
