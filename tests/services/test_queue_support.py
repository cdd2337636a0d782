"""Helpers shared by the queue and case-file tests (this module contains no tests).

The test database is emptied after each test, the built-in result codes and
compliance profiles of migration 0004 included, so `seed_followup` puts them back.
"""

import importlib.util
from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Case
from db.models_followup import ComplianceProfile, ResultCode
from tests.case_factories import make_case
from tests.conftest import ROOT

MIGRATION = ROOT / "db" / "migrations" / "versions" / "0004_follow_up.py"


def _migration():
    spec = importlib.util.spec_from_file_location("follow_up_0004", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_followup(session: Session) -> None:
    """Insert the built-in result codes and compliance profiles when missing."""
    migration = _migration()
    codes = [
        {
            "code": code,
            "label_en": en,
            "label_zh": zh,
            "connected": connected,
            "right_party": right_party,
            "sets_flag": flag,
            "builtin": True,
        }
        for code, en, zh, connected, right_party, flag in migration.RESULT_CODES
    ]
    session.execute(insert(ResultCode).values(codes).on_conflict_do_nothing())
    profiles = [
        {"code": code, "name": body["name"], "rules": body["rules"], "builtin": True}
        for code, body in migration.PROFILES.items()
    ]
    session.execute(insert(ComplianceProfile).values(profiles).on_conflict_do_nothing())
    session.commit()


def queued_case(
    session: Session, batch, collector, case_no: str, now: datetime, **columns
) -> Case:
    """Add a case in `collector`'s queue, first contact made, with given columns."""
    case = make_case(
        session,
        batch,
        case_no,
        total_due=columns.pop("total_due", "1000.00"),
        risk_grade=columns.pop("risk_grade", None),
    )
    case.status = columns.pop("status", "in_progress")
    case.collector_id = collector.id
    case.team_id = collector.team_id
    case.assigned_at = columns.pop("assigned_at", now - timedelta(days=5))
    case.first_contact_at = columns.pop("first_contact_at", now - timedelta(days=4))
    for name, value in columns.items():
        setattr(case, name, value)
    session.flush()
    return case
