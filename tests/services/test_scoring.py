"""Features as of a day, the label window, the scorecard and the scoring run."""

from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
from sqlalchemy import select

from db.models import AuditEntry, Case, Payment
from db.models_followup import ContactAttempt, Promise
from db.models_score import CaseScore
from recova.errors import PermissionDenied
from services import scoring
from services.actors import Actor
from services.scoring import features
from services.scoring.scorecard import (
    DEFAULT_SCORECARD,
    score_case_points,
    score_frame,
    scorecard_from_rows,
    scorecard_to_rows,
)
from services.segments import local_today
from tests.case_factories import make_batch, make_case, make_collector
from tests.factories import make_user
from tests.scoring_history import ensure_result_codes, moment

D = date(2026, 6, 15)


def pay(session, case, day: date, amount: str, reverses: int | None = None) -> Payment:
    payment = Payment(
        creditor_id=case.creditor_id,
        transaction_id=f"T{case.id}-{day}-{amount}",
        case_id=case.id,
        amount=Decimal(amount),
        paid_on=day,
        source="manual",
        reverses_id=reverses,
    )
    session.add(payment)
    session.flush()
    return payment


def attempt(session, case, at, right_party: bool = True) -> None:
    session.add(
        ContactAttempt(
            case_id=case.id,
            debtor_id=case.debtor_id,
            at=at,
            channel="phone",
            target="debtor",
            result_code="promise" if right_party else "no_answer",
            connected=right_party,
            right_party=right_party,
        )
    )
    session.flush()


@pytest.fixture
def one_case(session):
    ensure_result_codes(session)
    batch = make_batch(session)
    case = make_case(session, batch, "C1", total_due="5000.00", product="信用卡")
    case.placement_date = D - timedelta(days=60)
    case.overdue_since = D - timedelta(days=45)
    session.commit()
    return case


def features_of(session, case, day=D) -> dict:
    frame = features.build_features(session, day, scope="any", case_ids=[case.id])
    return frame.row(0, named=True)


def label_of(session, case, day=D) -> int:
    return features.build_labels(session, day, pl.Series([case.id]))[0]


# Features see nothing from the scoring day on.


def test_features_count_before_day(session, one_case):
    pay(session, one_case, D - timedelta(days=5), "300.00")
    attempt(session, one_case, moment(D - timedelta(days=2)))
    attempt(session, one_case, moment(D - timedelta(days=40)), right_party=False)
    row = features_of(session, one_case)
    assert row["dpd"] == 45
    assert row["payments"] == 1
    assert row["paid_amount"] == 300.0
    assert row["balance"] == 4700.0
    assert row["days_since_payment"] == 5
    assert row["attempts"] == 2
    assert row["attempts_30d"] == 1
    assert row["right_party"] == 1
    assert row["ever_reached"] == 1
    assert row["days_since_contact"] == 2


def test_later_events_change_no_feature(session, one_case):
    pay(session, one_case, D - timedelta(days=5), "300.00")
    before = features_of(session, one_case)

    pay(session, one_case, D, "100.00")
    pay(session, one_case, D + timedelta(days=3), "900.00")
    attempt(session, one_case, moment(D, hour=0))
    attempt(session, one_case, moment(D + timedelta(days=1)))
    session.add(
        Promise(
            case_id=one_case.id,
            amount=Decimal("500.00"),
            due_on=D - timedelta(days=10),
            status="kept",
            created_at=moment(D + timedelta(days=1)),
        )
    )
    session.flush()
    assert features_of(session, one_case) == before


def test_promise_counts_after_grace(session, one_case):
    for due, status in [
        (D - timedelta(days=3), "kept"),
        (D - timedelta(days=2), "broken"),
        (D - timedelta(days=10), "partly_kept"),
    ]:
        session.add(
            Promise(
                case_id=one_case.id,
                amount=Decimal("100.00"),
                due_on=due,
                status=status,
                created_at=moment(D - timedelta(days=20)),
            )
        )
    session.flush()
    row = features_of(session, one_case)
    assert row["promises_kept"] == 1
    # Due two days ago: the grace days are not over, so it is still open.
    assert row["promises_broken"] == 1
    assert row["promises_open"] == 1


# The label window is (D, D + 30].


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-1, 0), (0, 0), (1, 1), (30, 1), (31, 0)],
)
def test_label_window_edges(session, one_case, offset, expected):
    pay(session, one_case, D + timedelta(days=offset), "100.00")
    assert label_of(session, one_case) == expected


def test_label_reversed_payment_is_not_paid(session, one_case):
    original = pay(session, one_case, D + timedelta(days=2), "100.00")
    pay(session, one_case, D + timedelta(days=4), "-100.00", reverses=original.id)
    assert label_of(session, one_case) == 0


def test_history_scope_skips_paid_and_recalled(session, one_case):
    pay(session, one_case, D - timedelta(days=1), "5000.00")
    frame = features.build_features(session, D, scope="history")
    assert frame.height == 0


# The scorecard


def test_scorecard_lines_add_up(session, one_case):
    pay(session, one_case, D - timedelta(days=5), "300.00")
    attempt(session, one_case, moment(D - timedelta(days=2)))
    row = features_of(session, one_case)
    lines = score_case_points(scorecard=DEFAULT_SCORECARD, features=row)
    frame = features.build_features(session, D, scope="any", case_ids=[one_case.id])
    vectorised = score_frame(DEFAULT_SCORECARD, frame)["score"][0]
    assert sum(line.points for line in lines) == vectorised
    assert [line.feature for line in lines][:3] == ["base", "dpd", "balance"]
    assert lines[1].points == 10


def test_scorecard_missing_contact_points(session, one_case):
    row = features_of(session, one_case)
    lines = {
        line.feature: line
        for line in score_case_points(scorecard=DEFAULT_SCORECARD, features=row)
    }
    assert lines["days_since_contact"].bin == "missing"
    assert lines["days_since_contact"].points == -5


def test_saved_scorecard_is_audited(session):
    admin = make_user(session, "ada", role="admin")
    card = DEFAULT_SCORECARD.model_copy(update={"base": 40})
    view = scoring.save_scorecard(
        session=session, actor=admin, data=scoring.ScorecardInput(scorecard=card)
    )
    assert view.version == 1
    assert view.scorecard.base == 40
    entry = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "scorecard_saved")
    )
    assert entry.before["base"] == 50
    assert entry.after["base"] == 40


def test_manager_cannot_edit_scorecard(session):
    manager = make_user(session, "max", role="manager")
    with pytest.raises(PermissionDenied):
        scoring.save_scorecard(
            session=session,
            actor=manager,
            data=scoring.ScorecardInput(scorecard=DEFAULT_SCORECARD),
        )


# Scoring open cases


@pytest.fixture
def scored_cases(session):
    ensure_result_codes(session)
    collector = make_collector(session, "cal")
    other = make_collector(session, "dee")
    batch = make_batch(session)
    near = make_case(session, batch, "NEAR", total_due="1500.00", dpd=10)
    far = make_case(session, batch, "FAR", total_due="80000.00", dpd=300)
    near.collector_id, far.collector_id = collector.id, other.id
    near.status = far.status = "in_progress"
    attempt(session, near, moment(local_today() - timedelta(days=1)))
    session.commit()
    return collector, near, far


def test_scoring_writes_grades(session, scored_cases):
    _, near, far = scored_cases
    counts = scoring.score_open_cases(session=session, day=local_today())
    assert counts.scored == 2
    assert counts.changed == 2
    assert counts.scorer == "scorecard:0"
    session.expire_all()
    assert session.get(Case, near.id).risk_grade == "A"
    assert session.get(Case, far.id).risk_grade == "E"
    stored = session.get(CaseScore, near.id)
    assert len(stored.factors) == 3
    assert stored.score == session.get(Case, near.id).risk_score


def test_scoring_twice_changes_nothing(session, scored_cases):
    day = local_today()
    scoring.score_open_cases(session=session, day=day)
    again = scoring.score_open_cases(session=session, day=day)
    assert again.changed == 0
    assert scoring.nightly_job(session, day).skipped


def test_explain_lines_match_score(session, scored_cases):
    collector, near, _ = scored_cases
    scoring.score_open_cases(session=session, day=local_today())
    explanation = scoring.explain_case(
        session=session, actor=collector, case_id=near.id
    )
    assert explanation.grade == "A"
    assert explanation.model == "scorecard v0"
    assert sum(line.points for line in explanation.lines) == explanation.score


def test_collector_cannot_explain_others(session, scored_cases):
    collector, _, far = scored_cases
    with pytest.raises(PermissionDenied):
        scoring.explain_case(session=session, actor=collector, case_id=far.id)


def test_collector_cannot_run_scoring(session, scored_cases):
    collector, _, _ = scored_cases
    with pytest.raises(PermissionDenied):
        scoring.score_open_cases(session=session, day=local_today(), actor=collector)


def test_grade_distribution_counts_open(session, scored_cases):
    manager = make_user(session, "mia", role="manager")
    scoring.score_open_cases(session=session, day=local_today(), actor=manager)
    counts = scoring.grade_distribution(session=session, actor=manager)
    assert counts["A"] == 1
    assert counts["E"] == 1
    assert counts["-"] == 0


def test_operator_actor_may_score(session, scored_cases):
    counts = scoring.score_open_cases(
        session=session, day=local_today(), actor=Actor.operator()
    )
    assert counts.scored == 2


def test_scorecard_table_round_trip():
    rows = scorecard_to_rows(DEFAULT_SCORECARD)
    rebuilt = scorecard_from_rows(rows, DEFAULT_SCORECARD.base, DEFAULT_SCORECARD.bands)
    assert rebuilt == DEFAULT_SCORECARD


def test_scorecard_table_rejects_open_last_bin():
    rows = [
        {"feature": "dpd", "kind": "bin", "bound": "30", "points": 5},
        {"feature": "dpd", "kind": "bin", "bound": "60", "points": 1},
    ]
    with pytest.raises(ValueError, match="last bin"):
        scorecard_from_rows(rows, 50, DEFAULT_SCORECARD.bands)


def test_product_points_by_name(session, one_case):
    card = DEFAULT_SCORECARD.model_copy(deep=True)
    product = next(item for item in card.characteristics if item.feature == "product")
    product.categories = {"信用卡": 7}
    row = features_of(session, one_case)
    lines = {
        line.feature: line for line in score_case_points(scorecard=card, features=row)
    }
    frame = features.build_features(session, D, scope="any", case_ids=[one_case.id])
    assert lines["product"].points == 7
    assert score_frame(card, frame)["points_product"][0] == 7
