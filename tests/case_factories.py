"""Cases, batches and collectors made directly in the database for assignment tests.

Intake is tested on its own, so these helpers give each test exact amounts, days
past due, provinces and customer types without going through a placement file.
"""

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Batch, Case, Creditor, Debtor
from services.actors import Actor
from services.segments import local_today
from tests.factories import make_user


def make_batch(
    session: Session,
    creditor: str = "Test Bank",
    name: str = "batch 1",
    recall_date: date | None = None,
) -> Batch:
    found = session.scalar(select(Creditor).where(Creditor.name == creditor))
    if found is None:
        found = Creditor(name=creditor)
        session.add(found)
        session.flush()
    batch = Batch(
        creditor_id=found.id,
        name=name,
        placement_date=local_today(),
        recall_date=recall_date,
        file_name="test.csv",
        file_sha256="0" * 64,
        file_size=0,
        mode="valid-rows",
    )
    session.add(batch)
    session.flush()
    return batch


def make_case(
    session: Session,
    batch: Batch,
    case_no: str,
    *,
    total_due: str | int = "1000.00",
    balance: str | int | None = None,
    dpd: int = 10,
    province: str | None = "广东",
    customer_type: str = "individual",
    product: str | None = None,
    risk_grade: str | None = None,
    recall_date: date | None = None,
) -> Case:
    """Add a `new` case whose days past due today are `dpd`."""
    debtor = Debtor(
        creditor_id=batch.creditor_id,
        name=f"Debtor {case_no}",
        province=province,
        customer_type=customer_type,
    )
    session.add(debtor)
    session.flush()
    today = local_today()
    amount = Decimal(str(total_due))
    case = Case(
        creditor_id=batch.creditor_id,
        batch_id=batch.id,
        debtor_id=debtor.id,
        case_no=case_no,
        product=product,
        total_due=amount,
        balance=Decimal(str(balance)) if balance is not None else amount,
        overdue_since=today - timedelta(days=dpd),
        dpd_at_placement=dpd,
        placement_date=today,
        recall_date=recall_date,
        risk_grade=risk_grade,
    )
    session.add(case)
    session.flush()
    return case


def make_collector(
    session: Session,
    username: str,
    *,
    regions: list[str] | None = None,
    skill: int = 1,
    capacity: int = 500,
    team: str | None = None,
) -> Actor:
    return make_user(
        session,
        username,
        role="collector",
        regions=regions or [],
        skill=skill,
        capacity=capacity,
        team=team,
    )
