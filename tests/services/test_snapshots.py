"""The daily case history: rows only on change, re-runs, catch-up and refresh."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from recova.errors import Conflict
from services import snapshots
from tests.case_factories import make_batch, make_case

DAY = date(2026, 11, 2)


def history(session, case_no: str) -> list[tuple]:
    return session.execute(
        text(
            "SELECT h.valid_from, h.valid_to, h.bucket, h.balance "
            "FROM case_snapshots h JOIN cases c ON c.id = h.case_id "
            "WHERE c.case_no = :no ORDER BY h.valid_from"
        ),
        {"no": case_no},
    ).all()


@pytest.fixture
def two_cases(session):
    batch = make_batch(session)
    first = make_case(session, batch, "S1", total_due="1000.00")
    second = make_case(session, batch, "S2", total_due="2000.00")
    for case in (first, second):
        case.placement_date = date(2026, 10, 1)
    first.overdue_since = DAY - timedelta(days=29)
    second.overdue_since = DAY - timedelta(days=5)
    session.commit()
    return first, second


def test_unchanged_day_writes_nothing(session, two_cases):
    assert snapshots.take_snapshot(session=session, day=DAY) == 2
    assert snapshots.take_snapshot(session=session, day=DAY + timedelta(days=1)) == 0


def test_bucket_move_closes_old_row(session, two_cases):
    snapshots.take_snapshot(session=session, day=DAY)
    snapshots.take_snapshot(session=session, day=DAY + timedelta(days=2))
    rows = history(session, "S1")
    assert [(row.bucket, row.valid_to) for row in rows] == [
        ("M1", DAY + timedelta(days=2)),
        ("M2", None),
    ]
    assert len(history(session, "S2")) == 1


def test_rerun_of_latest_day_replaces_it(session, two_cases):
    first, _ = two_cases
    snapshots.take_snapshot(session=session, day=DAY)
    snapshots.take_snapshot(session=session, day=DAY + timedelta(days=1))
    first.balance = Decimal("400.00")
    session.commit()
    assert snapshots.take_snapshot(session=session, day=DAY + timedelta(days=1)) == 1
    assert snapshots.take_snapshot(session=session, day=DAY + timedelta(days=1)) == 1
    rows = history(session, "S1")
    assert [(row.valid_from, row.balance) for row in rows] == [
        (DAY, Decimal("1000.00")),
        (DAY + timedelta(days=1), Decimal("400.00")),
    ]
    assert rows[0].valid_to == DAY + timedelta(days=1)


def test_earlier_day_rejected(session, two_cases):
    snapshots.take_snapshot(session=session, day=DAY)
    with pytest.raises(Conflict) as raised:
        snapshots.take_snapshot(session=session, day=DAY - timedelta(days=1))
    assert raised.value.params["last"] == DAY.isoformat()


def test_closed_case_has_no_bucket(session, two_cases):
    first, _ = two_cases
    first.status, first.balance = "paid", Decimal("0.00")
    session.commit()
    snapshots.take_snapshot(session=session, day=DAY)
    assert history(session, "S1")[0].bucket is None


def test_case_placed_later_not_recorded(session, two_cases):
    first, _ = two_cases
    first.placement_date = DAY + timedelta(days=5)
    session.commit()
    assert snapshots.take_snapshot(session=session, day=DAY) == 1


def test_catch_up_takes_each_missed_day(session, two_cases):
    snapshots.take_snapshot(session=session, day=DAY)
    days_taken = snapshots.catch_up_snapshots(session, DAY + timedelta(days=3))
    assert days_taken == [DAY + timedelta(days=n) for n in (1, 2, 3)]
    days = session.scalars(text("SELECT day FROM snapshot_days ORDER BY day")).all()
    assert days == [DAY + timedelta(days=n) for n in range(4)]
    assert snapshots.catch_up_snapshots(session, DAY + timedelta(days=3)) == []


def test_first_catch_up_takes_only_today(session, two_cases):
    assert snapshots.catch_up_snapshots(session, DAY) == [DAY]


def test_daily_job_twice_gives_same_sums(session, two_cases):
    snapshots.daily_job(session, DAY)
    first = session.execute(
        text("SELECT * FROM kpi_population ORDER BY dim, scope, key, day")
    ).all()
    snapshots.daily_job(session, DAY)
    second = session.execute(
        text("SELECT * FROM kpi_population ORDER BY dim, scope, key, day")
    ).all()
    assert first == second
    totals = dict(
        session.execute(
            text("SELECT key, total_due FROM kpi_population WHERE dim = 'bucket'")
        ).all()
    )
    assert totals == {"M1": Decimal("3000.00")}


def test_month_roll_stored_at_month_end(session, two_cases):
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    snapshots.daily_job(session, start)
    snapshots.daily_job(session, end)
    rolled = session.execute(
        text(
            "SELECT from_bucket, to_state, balance FROM kpi_roll "
            "WHERE dim = 'all' ORDER BY from_bucket, to_state"
        )
    ).all()
    assert [tuple(row) for row in rolled] == [
        ("M1", "M2", Decimal("3000.00")),
    ]


def test_catch_up_on_a_new_install_with_no_cases(session):
    # `recova serve` runs this on start-up, also before the first import.
    from services.segments import local_today
    from services.snapshots import catch_up_snapshots

    assert catch_up_snapshots(session, local_today()) == [local_today()]
    assert catch_up_snapshots(session, local_today()) == []
