"""Generated collection history for scoring tests: cases, attempts, promises and
payments, where debtors who pick up the phone also tend to pay.

Rows go straight into the tables, like the case factories, so each test controls
every date. All debtors are made up.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from db.models import Case, Debtor, Payment
from db.models_followup import ContactAttempt, Promise
from services.segments import local_today
from tests.case_factories import make_batch

PRODUCTS = ("信用卡", "消费贷", "车贷")
ZONE = ZoneInfo("Asia/Shanghai")


def ensure_result_codes(session: Session) -> None:
    """Add the two result codes the generated attempts use (tests empty the table)."""
    session.execute(
        text(
            "INSERT INTO result_codes (code, label_en, label_zh, connected, "
            "right_party, builtin) VALUES "
            "('promise', 'Promise to pay', '承诺还款', true, true, true), "
            "('no_answer', 'No answer', '无人接听', false, false, true) "
            "ON CONFLICT (code) DO NOTHING"
        )
    )


def moment(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZONE)


def make_history(
    session: Session, cases: int = 240, days: int = 200, seed: int = 1
) -> list[int]:
    """Create `cases` open cases placed `days` ago with a weekly attempt each and
    payments that follow the debtor's hidden propensity; return the case ids."""
    ensure_result_codes(session)
    rng = np.random.default_rng(seed)
    today = local_today()
    start = today - timedelta(days=days)
    batch = make_batch(session, name=f"history {seed}")
    batch.placement_date = start
    debtor_ids = session.scalars(
        insert(Debtor).returning(Debtor.id),
        [
            {"creditor_id": batch.creditor_id, "name": f"Made-up debtor {n}"}
            for n in range(cases)
        ],
    ).all()
    propensity = rng.beta(1.2, 2.5, size=cases)
    rows = []
    for n, debtor_id in enumerate(debtor_ids):
        amount = Decimal(int(rng.integers(1000, 60000)))
        rows.append(
            {
                "creditor_id": batch.creditor_id,
                "batch_id": batch.id,
                "debtor_id": debtor_id,
                "case_no": f"H{seed}-{n:05d}",
                "product": PRODUCTS[n % len(PRODUCTS)],
                "total_due": amount,
                "balance": amount,
                "overdue_since": start - timedelta(days=int(rng.integers(5, 150))),
                "dpd_at_placement": 30,
                "placement_date": start,
                "status": "in_progress",
            }
        )
    case_ids = session.scalars(insert(Case).returning(Case.id), rows).all()

    attempts, payments, promises = [], [], []
    for n, case_id in enumerate(case_ids):
        q = propensity[n]
        for offset in range(1, days, 7):
            reached = bool(rng.random() < q)
            attempts.append(
                {
                    "case_id": case_id,
                    "debtor_id": debtor_ids[n],
                    "at": moment(start + timedelta(days=offset)),
                    "channel": "phone",
                    "target": "debtor",
                    "result_code": "promise" if reached else "no_answer",
                    "connected": reached,
                    "right_party": reached,
                }
            )
        for offset in range(3, days, 10):
            if rng.random() < q * 0.35:
                payments.append(
                    {
                        "creditor_id": batch.creditor_id,
                        "transaction_id": f"T{seed}-{case_id}-{offset}",
                        "case_id": case_id,
                        "amount": Decimal(int(rng.integers(100, 500))),
                        "paid_on": start + timedelta(days=offset),
                        "source": "manual",
                    }
                )
        if q > 0.5:
            promises.append(
                {
                    "case_id": case_id,
                    "amount": Decimal(200),
                    "due_on": start + timedelta(days=20),
                    "status": "kept",
                    "created_at": moment(start + timedelta(days=10)),
                }
            )
    session.execute(insert(ContactAttempt), attempts)
    if payments:
        session.execute(insert(Payment), payments)
    if promises:
        session.execute(insert(Promise), promises)
    session.commit()
    return list(case_ids)
