"""A small portfolio built by hand, with its October 2026 KPIs worked out on paper.

Cases of creditor "Hand Bank", in Guangdong except D:

- A: total due 1,000.00, overdue since 2026-09-21, so M1 on 1 Oct; 3 attempts and a
  promise of 600 due 20 Oct that was broken.
- B: 2,000.00, overdue since 2026-09-26 (M1); 2 attempts, a promise of 2,000 due
  12 Oct that was kept; paid 2,000 on 10 Oct, so `paid`.
- C: 3,000.00, overdue since 2026-08-17 (M2); 1 attempt; 300 paid and reversed,
  then 500 paid.
- D: 4,000.00 in Zhejiang, overdue since 2026-10-01, placed 15 Oct, assigned 16 Oct.

A, B and C were placed and assigned on 1 September; C was reassigned on 2 October
and its first contact came a day late. Snapshots are taken on 1, 10 and 31 October.

Expected October figures:
- recovered 2,500.00 (2,000 + 300 − 300 + 500) of 10,000.00 placed: 0.2500;
- cases with a payment not reversed by 31 Oct: B and C of 4: 0.5000;
- cycle: B, assigned 1 Sep, closed 10 Oct: 39.00 days;
- attempts 6, connected 4, right party 3: contact 0.6667, RPC 0.5000;
- promises 2 ÷ RPC 3: 0.6667; kept 1 of 2 due: 0.5000; by amount 2,000 ÷ 2,600: 0.7692;
- roll M1→M2: A's 1,000 of M1's 3,000: 0.3333; cure: B's 2,000 of 6,000: 0.3333;
- SLA: D met, C missed: 0.5000;
- productivity: ann worked 5 days (attempt days) with 6 attempts: 1.20 a day.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import Batch, Case, Creditor, Debtor, Payment
from db.models_followup import ContactAttempt, Promise
from services import snapshots
from services.kpi import KpiFilter
from tests.factories import make_user

OCTOBER = KpiFilter(date_from=date(2026, 10, 1), date_to=date(2026, 10, 31))
EXPECTED = {
    "recovered": Decimal("2500.00"),
    "recovery_rate": Decimal("0.2500"),
    "case_recovery_rate": Decimal("0.5000"),
    "avg_cycle_days": Decimal("39.00"),
    "contact_rate": Decimal("0.6667"),
    "rpc_rate": Decimal("0.5000"),
    "ptp_rate": Decimal("0.6667"),
    "ptp_kept_rate": Decimal("0.5000"),
    "ptp_kept_amount_rate": Decimal("0.7692"),
    "roll_rate": Decimal("0.3333"),
    "cure_rate": Decimal("0.3333"),
    "sla_compliance": Decimal("0.5000"),
    "attempts_per_day": Decimal("1.20"),
}


def local(day: date, hour: int = 10) -> datetime:
    """Return `hour` o'clock in Shanghai on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def build_portfolio(session: Session) -> dict[str, int]:
    """Write the portfolio and its October history; return user and case ids."""
    ann = make_user(session, "ann", role="collector", team="North")
    make_user(session, "mia", role="manager")
    creditor = Creditor(name="Hand Bank")
    session.add(creditor)
    session.flush()
    september = _batch(session, creditor, "September", date(2026, 9, 1))
    october = _batch(session, creditor, "October", date(2026, 10, 15))

    specs = [
        ("A", september, "1000.00", date(2026, 9, 21), "广东"),
        ("B", september, "2000.00", date(2026, 9, 26), "广东"),
        ("C", september, "3000.00", date(2026, 8, 17), "广东"),
        ("D", october, "4000.00", date(2026, 10, 1), "浙江"),
    ]
    cases = {
        name: _case(session, batch, name, amount, overdue, province, ann)
        for name, batch, amount, overdue, province in specs
    }
    for batch in (september, october):
        batch.total_due = sum(c.total_due for c in cases.values() if c.batch == batch)
    session.commit()

    snapshots.take_snapshot(session=session, day=date(2026, 10, 1))
    _reassign(session, cases["C"], date(2026, 10, 2), first_contact=date(2026, 10, 4))
    _attempts(session, cases, ann.id)
    _promises(session, cases, ann.id)
    _pay(session, cases["B"], "T-B1", "2000.00", date(2026, 10, 10), ann.id)
    _close(session, cases["B"])
    session.commit()
    snapshots.take_snapshot(session=session, day=date(2026, 10, 10))

    first = _pay(session, cases["C"], "T-C1", "300.00", date(2026, 10, 5), ann.id)
    _pay(session, cases["C"], "T-C2", "-300.00", date(2026, 10, 6), ann.id, first)
    _pay(session, cases["C"], "T-C3", "500.00", date(2026, 10, 20), ann.id)
    cases["C"].balance = Decimal("2500.00")
    _reassign(session, cases["D"], date(2026, 10, 16), first_contact=date(2026, 10, 16))
    session.commit()
    snapshots.take_snapshot(session=session, day=date(2026, 10, 31))
    return {"ann": ann.id, **{name: case.id for name, case in cases.items()}}


def _batch(session: Session, creditor: Creditor, name: str, placed: date) -> Batch:
    batch = Batch(
        creditor_id=creditor.id,
        name=name,
        placement_date=placed,
        commission_rate=Decimal("0.2000"),
        file_name=f"{name}.csv",
        file_sha256="0" * 64,
        file_size=0,
        mode="valid-rows",
    )
    session.add(batch)
    session.flush()
    return batch


def _case(session, batch, name, amount, overdue, province, collector) -> Case:
    debtor = Debtor(
        creditor_id=batch.creditor_id, name=f"Debtor {name}", province=province
    )
    session.add(debtor)
    session.flush()
    assigned = local(date(2026, 9, 1))
    case = Case(
        creditor_id=batch.creditor_id,
        batch_id=batch.id,
        debtor_id=debtor.id,
        case_no=name,
        product="card",
        total_due=Decimal(amount),
        balance=Decimal(amount),
        overdue_since=overdue,
        dpd_at_placement=(batch.placement_date - overdue).days,
        placement_date=batch.placement_date,
        status="in_progress",
        segment="standard",
        collector_id=collector.id,
        team_id=collector.team_id,
        assigned_at=assigned,
        first_contact_due_at=assigned + timedelta(hours=24),
        first_contact_at=assigned + timedelta(hours=2),
    )
    if name == "D":
        case.status, case.collector_id, case.assigned_at = "new", None, None
        case.first_contact_due_at = case.first_contact_at = None
    session.add(case)
    session.flush()
    return case


def _reassign(session, case: Case, day: date, first_contact: date) -> None:
    case.status = "in_progress"
    case.collector_id = session.scalar(
        text("SELECT id FROM users WHERE username='ann'")
    )
    case.assigned_at = local(day)
    case.first_contact_due_at = local(day) + timedelta(hours=24)
    case.first_contact_at = local(first_contact, 15)


def _seed_result_codes(session) -> None:
    # The test clean-up empties every table, the seeded result codes included.
    for code, connected, right_party in (
        ("no_answer", False, False),
        ("third_party", True, False),
        ("promise", True, True),
        ("refused", True, True),
    ):
        session.execute(
            text(
                "INSERT INTO result_codes (code, label_en, label_zh, connected, "
                "right_party, builtin) VALUES (:code, :code, :code, :connected, "
                ":right_party, true) ON CONFLICT (code) DO NOTHING"
            ),
            {"code": code, "connected": connected, "right_party": right_party},
        )


def _attempts(session, cases, collector_id: int) -> None:
    _seed_result_codes(session)
    plan = [
        ("A", date(2026, 10, 3), "no_answer", False, False),
        ("A", date(2026, 10, 4), "third_party", True, False),
        ("A", date(2026, 10, 5), "promise", True, True),
        ("B", date(2026, 10, 6), "refused", True, True),
        ("B", date(2026, 10, 7), "promise", True, True),
        ("C", date(2026, 10, 7), "no_answer", False, False),
    ]
    team_id = cases["A"].team_id
    for name, day, code, connected, right_party in plan:
        session.add(
            ContactAttempt(
                case_id=cases[name].id,
                debtor_id=cases[name].debtor_id,
                collector_id=collector_id,
                team_id=team_id,
                at=local(day),
                channel="phone",
                target="debtor",
                result_code=code,
                connected=connected,
                right_party=right_party,
            )
        )


def _promises(session, cases, collector_id: int) -> None:
    for name, amount, due, status, paid in (
        ("A", "600.00", date(2026, 10, 20), "broken", "0"),
        ("B", "2000.00", date(2026, 10, 12), "kept", "2000.00"),
    ):
        session.add(
            Promise(
                case_id=cases[name].id,
                collector_id=collector_id,
                amount=Decimal(amount),
                due_on=due,
                status=status,
                paid_amount=Decimal(paid),
                created_at=local(date(2026, 10, 5 if name == "A" else 7), 11),
            )
        )


def _pay(session, case, transaction, amount, day, collector_id, reverses=None):
    payment = Payment(
        creditor_id=case.creditor_id,
        transaction_id=transaction,
        case_id=case.id,
        amount=Decimal(amount),
        paid_on=day,
        reverses_id=reverses.id if reverses else None,
        source="manual",
        collector_id=collector_id,
    )
    session.add(payment)
    session.flush()
    return payment


def _close(session, case: Case) -> None:
    case.balance = Decimal("0.00")
    case.status = "paid"
