"""Assigned cases, times in a debtor's zone and payments for the follow-up tests."""

import importlib.util
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Case, Creditor, Debtor, Payment
from services.actors import Actor
from services.contacts import AttemptInput
from tests.case_factories import make_batch, make_case, make_collector
from tests.conftest import ROOT
from tests.factories import make_user

MIGRATION = ROOT / "db" / "migrations" / "versions" / "0004_follow_up.py"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def assign(
    session: Session,
    case: Case,
    collector: Actor,
    *,
    strategy: str = "standard",
    assigned_at: datetime | None = None,
    phone: str | None = "13800001111",
) -> Case:
    """Give `case` to `collector` as automatic assignment would."""
    assigned_at = assigned_at or datetime.now(UTC) - timedelta(days=20)
    case.collector_id = collector.id
    case.team_id = collector.team_id
    case.status = "assigned"
    case.strategy = strategy
    case.segment = strategy
    case.assigned_at = assigned_at
    case.first_contact_due_at = assigned_at + timedelta(hours=24)
    case.next_action_at = assigned_at
    if phone:
        session.get(Debtor, case.debtor_id).phones = [phone]
    session.commit()
    session.refresh(case)
    return case


def setup_case(
    session: Session,
    *,
    case_no: str = "C-1",
    profile: str = "cn",
    collector: str = "amy",
    team: str = "north",
    balance: str = "5000.00",
    **assign_options,
) -> tuple[Case, Actor]:
    """One creditor with `profile`, one collector in `team`, one assigned case."""
    batch = make_batch(session)
    session.get(Creditor, batch.creditor_id).compliance_profile = profile
    case = make_case(session, batch, case_no, total_due=balance)
    actor = make_collector(session, collector, team=team)
    return assign(session, case, actor, **assign_options), actor


def another_case(
    session: Session, like: Case, case_no: str, collector: Actor, **options
) -> Case:
    """A second case of the same creditor and batch for `collector`."""
    batch = like.batch
    case = make_case(session, batch, case_no)
    return assign(session, case, collector, **options)


def team_lead(session: Session, name: str = "lena", team: str = "north") -> Actor:
    return make_user(session, name, role="team_lead", team=team)


def local(zone: ZoneInfo, days_ago: int, hour: int, minute: int = 0) -> datetime:
    """A moment `days_ago` days back at hour:minute in `zone`."""
    day = datetime.now(zone).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def attempt(case: Case, **fields) -> AttemptInput:
    values = {"case_id": case.id, "channel": "phone", "result_code": "no_answer"}
    values.update(fields)
    return AttemptInput(**values)


def pay(
    session: Session,
    case: Case,
    amount: str,
    paid_on: date,
    *,
    transaction: str | None = None,
    reverses: Payment | None = None,
) -> Payment:
    """Insert a posted payment row directly (the posting service is tested apart)."""
    count = session.scalar(text("SELECT count(*) FROM payments")) or 0
    payment = Payment(
        creditor_id=case.creditor_id,
        transaction_id=transaction or f"T{count + 1}",
        case_id=case.id,
        amount=Decimal(amount),
        paid_on=paid_on,
        reverses_id=reverses.id if reverses else None,
        source="manual",
    )
    session.add(payment)
    session.commit()
    return payment


def reload(session: Session, case: Case) -> Case:
    return session.scalars(
        select(Case).where(Case.id == case.id).execution_options(populate_existing=True)
    ).one()


def _migration():
    spec = importlib.util.spec_from_file_location("followup_0004", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_builtins(engine) -> None:
    """Put back the result codes and profiles migration 0004 seeds; the test
    fixture empties every table after each test, seeds included."""
    module = _migration()
    with engine.begin() as conn:
        for code, en, zh, connected, right_party, flag in module.RESULT_CODES:
            conn.execute(
                text(
                    "INSERT INTO result_codes (code, label_en, label_zh, connected,"
                    " right_party, sets_flag, builtin) VALUES (:code, :en, :zh,"
                    " :connected, :right_party, :flag, true) ON CONFLICT DO NOTHING"
                ),
                dict(
                    code=code,
                    en=en,
                    zh=zh,
                    connected=connected,
                    right_party=right_party,
                    flag=flag,
                ),
            )
        for code, body in module.PROFILES.items():
            conn.execute(
                text(
                    "INSERT INTO compliance_profiles (code, name, rules, builtin)"
                    " VALUES (:code, :name, CAST(:rules AS jsonb), true)"
                    " ON CONFLICT DO NOTHING"
                ),
                {
                    "code": code,
                    "name": body["name"],
                    "rules": json.dumps(body["rules"]),
                },
            )
