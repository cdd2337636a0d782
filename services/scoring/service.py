"""Scoring services: the scorecard in force, model promotion, nightly scoring of
open cases and the explanation of one case's grade."""

import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Case, User
from db.models_score import CaseScore, ModelVersion, ScorecardVersion, ScoreRun
from recova.errors import InvalidInput, NotFound, PermissionDenied
from services import audit
from services.actors import CASE_READERS, MANAGERS, Actor, require_role
from services.scoring import features as feature_sql
from services.scoring import models
from services.scoring.grading import GRADES, GradeBands
from services.scoring.scorecard import (
    DEFAULT_SCORECARD,
    PointsLine,
    Scorecard,
    score_case_points,
    score_frame,
)

logger = logging.getLogger(__name__)

TOP_FACTORS = 3
SYSTEM_ACTOR = "scoring"


# The scorecard in force


@dataclass
class ScorecardView:
    version: int
    scorecard: Scorecard
    note: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None


class ScorecardInput(BaseModel):
    scorecard: Scorecard
    note: str | None = Field(default=None, max_length=500)


def _scorecard_view(row: ScorecardVersion, username: str | None) -> ScorecardView:
    return ScorecardView(
        version=row.version,
        scorecard=Scorecard.model_validate({**row.points, "bands": row.bands}),
        note=row.note,
        created_at=row.created_at,
        created_by=username,
    )


def current_scorecard(session: Session, version: int | None = None) -> ScorecardView:
    """Return the scorecard in force (or `version`): the defaults are version 0."""
    query = select(ScorecardVersion, User.username).outerjoin(
        User, User.id == ScorecardVersion.created_by
    )
    if version is not None:
        query = query.where(ScorecardVersion.version == version)
    row = session.execute(
        query.order_by(ScorecardVersion.version.desc()).limit(1)
    ).first()
    if row is None:
        return ScorecardView(version=0, scorecard=DEFAULT_SCORECARD)
    return _scorecard_view(*row)


def save_scorecard(
    *, session: Session, actor: Actor, data: ScorecardInput
) -> ScorecardView:
    """Save the points and grade bands as a new version and audit the change.

    Cases keep their grades until the next scoring run.
    """
    require_role(actor, "admin")
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recova.scorecard'))"))
    before = current_scorecard(session)
    version = before.version + 1
    dumped = data.scorecard.model_dump(mode="json")
    bands = dumped.pop("bands")
    session.add(
        ScorecardVersion(
            version=version,
            points=dumped,
            bands=bands,
            note=data.note,
            created_by=actor.id,
        )
    )
    audit.record(
        session,
        actor,
        "scorecard_saved",
        "scorecard",
        version,
        before={"version": before.version, **before.scorecard.model_dump(mode="json")},
        after={"version": version, **data.scorecard.model_dump(mode="json")},
        detail={"note": data.note},
    )
    session.commit()
    logger.info("scorecard version %s saved by %s", version, actor.username)
    return current_scorecard(session)


# Model versions


@dataclass
class ModelView:
    id: int
    name: str
    kind: str
    source: str
    status: str
    auc: float
    ks: float
    offered: bool
    proposed: bool
    usable_on_cases: bool
    training_id: str
    metrics: dict[str, Any]
    training: dict[str, Any]
    bands: GradeBands
    features: list[str]
    created_at: datetime
    created_by: str | None
    promoted_at: datetime | None

    def as_json(self, full: bool = False) -> dict[str, Any]:
        data = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "status": self.status,
            "auc": self.auc,
            "ks": self.ks,
            "offered": self.offered,
            "proposed": self.proposed,
            "usable_on_cases": self.usable_on_cases,
            "bands": self.bands.model_dump(mode="json"),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }
        if full:
            data["metrics"] = self.metrics
            data["training"] = self.training
            data["features"] = self.features
        return data


def _model_view(row: ModelVersion, username: str | None) -> ModelView:
    return ModelView(
        id=row.id,
        name=row.name,
        kind=row.kind,
        source=row.source,
        status=row.status,
        auc=row.metrics["auc"],
        ks=row.metrics["ks"],
        offered=row.offered,
        proposed=row.proposed,
        usable_on_cases=row.usable_on_cases,
        training_id=row.training_id,
        metrics=row.metrics,
        training=row.training,
        bands=GradeBands.model_validate(row.bands),
        features=list(row.features),
        created_at=row.created_at,
        created_by=username,
        promoted_at=row.promoted_at,
    )


def list_models(*, session: Session, actor: Actor) -> list[ModelView]:
    """Return every model version, the champion first, then newest first."""
    require_role(actor, *MANAGERS)
    rows = session.execute(
        select(ModelVersion, User.username)
        .outerjoin(User, User.id == ModelVersion.created_by)
        .order_by((ModelVersion.status == "champion").desc(), ModelVersion.id.desc())
    ).all()
    return [_model_view(row, username) for row, username in rows]


def get_model(*, session: Session, actor: Actor, model_id: int) -> ModelView:
    require_role(actor, *MANAGERS)
    row = session.execute(
        select(ModelVersion, User.username)
        .outerjoin(User, User.id == ModelVersion.created_by)
        .where(ModelVersion.id == model_id)
    ).first()
    if row is None:
        raise NotFound("score.model_not_found", model_id=model_id)
    return _model_view(*row)


def promote_model(*, session: Session, actor: Actor, model_id: int) -> ModelView:
    """Make a model the champion that scores cases; the old champion becomes a
    challenger. Promoting the champion again changes nothing."""
    require_role(actor, *MANAGERS)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recova.models'))"))
    row = session.get(ModelVersion, model_id, with_for_update=True)
    if row is None:
        raise NotFound("score.model_not_found", model_id=model_id)
    if row.status == "champion":
        session.rollback()
        return get_model(session=session, actor=actor, model_id=model_id)
    if not row.offered:
        raise InvalidInput(
            "score.auc_too_low",
            model_id=model_id,
            auc=row.metrics["auc"],
            minimum=models.MIN_AUC,
        )
    if not row.usable_on_cases:
        raise InvalidInput(
            "score.model_not_for_cases",
            model_id=model_id,
            features=", ".join(
                name
                for name in row.features
                if name
                not in feature_sql.NUMERIC_FEATURES + feature_sql.CATEGORICAL_FEATURES
            ),
        )
    previous = session.scalar(
        select(ModelVersion).where(ModelVersion.status == "champion")
    )
    if previous is not None:
        previous.status = "challenger"
        session.flush()
    row.status = "champion"
    row.promoted_by = actor.id
    row.promoted_at = datetime.now(UTC)
    audit.record(
        session,
        actor,
        "model_promoted",
        "model_version",
        model_id,
        before={"champion": previous.id if previous else None},
        after={
            "champion": model_id,
            "auc": row.metrics["auc"],
            "ks": row.metrics["ks"],
        },
    )
    session.commit()
    logger.info("model %s promoted by %s", model_id, actor.username)
    return get_model(session=session, actor=actor, model_id=model_id)


def use_scorecard(*, session: Session, actor: Actor) -> None:
    """Retire the champion to a challenger, so the scorecard scores cases again."""
    require_role(actor, *MANAGERS)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recova.models'))"))
    previous = session.scalar(
        select(ModelVersion).where(ModelVersion.status == "champion").with_for_update()
    )
    if previous is None:
        session.rollback()
        return
    previous.status = "challenger"
    audit.record(
        session,
        actor,
        "scorecard_restored",
        "model_version",
        previous.id,
        before={"champion": previous.id},
        after={"champion": None},
    )
    session.commit()


def save_model_bands(
    *, session: Session, actor: Actor, model_id: int, bands: GradeBands
) -> ModelView:
    """Change the grade bands of a model, audited; grades change at the next run."""
    require_role(actor, *MANAGERS)
    row = session.get(ModelVersion, model_id, with_for_update=True)
    if row is None:
        raise NotFound("score.model_not_found", model_id=model_id)
    before = dict(row.bands)
    row.bands = bands.model_dump(mode="json")
    audit.record(
        session,
        actor,
        "model_bands_saved",
        "model_version",
        model_id,
        before=before,
        after=row.bands,
    )
    session.commit()
    return get_model(session=session, actor=actor, model_id=model_id)


# Scoring open cases


@dataclass
class ScoreCounts:
    day: date
    scorer: str
    scorer_name: str
    scored: int
    changed: int
    grades: dict[str, int]
    skipped: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "scorer": self.scorer,
            "model": self.scorer_name,
            "scored": self.scored,
            "changed": self.changed,
            "grades": self.grades,
            "skipped": self.skipped,
            "metrics": self.metrics,
        }


@dataclass
class _Scorer:
    key: str
    name: str
    bands: GradeBands
    metrics: dict[str, Any]
    scorecard: ScorecardView | None = None
    model: models.PropensityModel | None = None


def _current_scorer(session: Session) -> _Scorer:
    champion = session.scalar(
        select(ModelVersion).where(ModelVersion.status == "champion")
    )
    if champion is None:
        view = current_scorecard(session)
        return _Scorer(
            key=f"scorecard:{view.version}",
            name=f"scorecard v{view.version}",
            bands=view.scorecard.bands,
            metrics={},
            scorecard=view,
        )
    return _Scorer(
        key=f"model:{champion.id}",
        name=champion.name,
        bands=GradeBands.model_validate(champion.bands),
        metrics={"auc": champion.metrics["auc"], "ks": champion.metrics["ks"]},
        model=models.load(champion.content, champion.sha256),
    )


def _value_text(column: pl.Expr) -> pl.Expr:
    whole = column.round(0) == column
    return (
        pl.when(whole)
        .then(column.cast(pl.Int64).cast(pl.String))
        .otherwise(column.round(2).cast(pl.String))
    )


def _factor_columns(
    frame: pl.DataFrame, names: list[str], effects: np.ndarray, top: np.ndarray
) -> pl.DataFrame:
    """Return f1..f3 (feature), v1..v3 (value as text) and e1..e3 (effect)."""
    numeric = np.column_stack(
        [
            frame[name].cast(pl.Float64).to_numpy()
            if name not in ("product",)
            else np.full(frame.height, np.nan)
            for name in names
        ]
    )
    rows = np.arange(frame.height)
    columns: dict[str, Any] = {}
    for rank in range(top.shape[1]):
        picked = top[:, rank]
        columns[f"f{rank + 1}"] = np.array(names, dtype=object)[picked]
        columns[f"n{rank + 1}"] = numeric[rows, picked]
        columns[f"e{rank + 1}"] = np.round(effects[rows, picked], 3)
    factors = pl.DataFrame(columns).with_columns(frame["product"].alias("product"))
    return factors.select(
        *(
            expression
            for rank in range(1, top.shape[1] + 1)
            for expression in (
                pl.col(f"f{rank}"),
                pl.when(pl.col(f"f{rank}") == "product")
                .then(pl.col("product"))
                .otherwise(_value_text(pl.col(f"n{rank}").fill_nan(None)))
                .alias(f"v{rank}"),
                pl.col(f"e{rank}"),
            )
        )
    )


def score_features(scorer: _Scorer, frame: pl.DataFrame) -> pl.DataFrame:
    """Return case_id, score, grade and the top factors of each row of `frame`."""
    if scorer.model is not None:
        model = scorer.model
        probability = model.predict(frame)
        scores = pl.Series("score", np.round(probability * 100, 2))
        effects = model.contributions(frame)
        names = model.features
    else:
        card = scorer.scorecard.scorecard
        points = score_frame(card, frame)
        scores = points["score"]
        names = [item.feature for item in card.characteristics]
        effects = points.select(f"points_{name}" for name in names).to_numpy()
    count = min(TOP_FACTORS, len(names))
    top = np.argsort(-np.abs(effects), axis=1, kind="stable")[:, :count]
    result = pl.DataFrame({"case_id": frame["case_id"], "score": scores}).with_columns(
        grade=scorer.bands.grade_expression(pl.col("score"))
    )
    return pl.concat(
        [result, _factor_columns(frame, names, effects.astype(float), top)],
        how="horizontal",
    )


def _write_scores(session: Session, scored: pl.DataFrame, day: date, key: str) -> int:
    """COPY the scores into a temporary table, then update cases and case_scores in
    one statement each. Return the number of cases whose score or grade changed."""
    session.execute(
        text(
            "CREATE TEMPORARY TABLE score_rows (case_id bigint PRIMARY KEY, "
            "score numeric(7,2), grade char(1), f1 text, v1 text, e1 numeric, "
            "f2 text, v2 text, e2 numeric, f3 text, v3 text, e3 numeric) "
            "ON COMMIT DROP"
        )
    )
    padded = scored
    for rank in range(1, TOP_FACTORS + 1):
        if f"f{rank}" not in padded.columns:
            padded = padded.with_columns(
                pl.lit(None, pl.String).alias(f"f{rank}"),
                pl.lit(None, pl.String).alias(f"v{rank}"),
                pl.lit(None, pl.Float64).alias(f"e{rank}"),
            )
    columns = ["case_id", "score", "grade"] + [
        f"{part}{rank}" for rank in range(1, TOP_FACTORS + 1) for part in "fve"
    ]
    buffer = io.BytesIO()
    padded.select(columns).write_csv(buffer, include_header=False, null_value="")
    cursor = session.connection().connection.driver_connection.cursor()
    statement = f"COPY score_rows ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    with cursor.copy(statement) as copy:
        copy.write(buffer.getbuffer())

    changed = session.execute(
        text(
            "UPDATE cases c SET risk_score = s.score, risk_grade = s.grade "
            "FROM score_rows s WHERE c.id = s.case_id "
            "AND (c.risk_score IS DISTINCT FROM s.score "
            "OR c.risk_grade IS DISTINCT FROM s.grade)"
        )
    ).rowcount
    factor = (
        "CASE WHEN f{n} IS NULL THEN NULL ELSE jsonb_build_object("
        "'feature', f{n}, 'value', v{n}, 'effect', e{n}) END"
    )
    factors = ", ".join(factor.format(n=rank) for rank in range(1, TOP_FACTORS + 1))
    session.execute(
        text(
            "INSERT INTO case_scores (case_id, scored_on, scorer, score, grade, "
            "factors) SELECT case_id, :day, :scorer, score, grade, "
            f"jsonb_path_query_array(jsonb_build_array({factors}), "
            "'$[*] ? (@ != null)') "
            "FROM score_rows "
            "ON CONFLICT (case_id) DO UPDATE SET scored_on = excluded.scored_on, "
            "scorer = excluded.scorer, score = excluded.score, "
            "grade = excluded.grade, factors = excluded.factors "
            "WHERE (case_scores.scorer, case_scores.score, case_scores.grade, "
            "case_scores.factors) IS DISTINCT FROM (excluded.scorer, "
            "excluded.score, excluded.grade, excluded.factors)"
        ),
        {"day": day, "scorer": key},
    )
    return changed


def score_open_cases(
    *, session: Session, day: date, actor: Actor | None = None
) -> ScoreCounts:
    """Score every open case as of `day` with the champion (the scorecard when no
    model is promoted), write risk_score and risk_grade, and keep each case's top
    factors. Running the same day again writes the same values."""
    if actor is not None:
        require_role(actor, *MANAGERS)
    started = datetime.now(UTC)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recova.scoring'))"))
    scorer = _current_scorer(session)
    frame = feature_sql.build_features(session, day, scope="open")
    scored = score_features(scorer, frame)
    changed = _write_scores(session, scored, day, scorer.key)
    grades = {grade: 0 for grade in GRADES}
    for grade, count in scored.group_by("grade").len().iter_rows():
        grades[grade] = count
    counts = ScoreCounts(
        day=day,
        scorer=scorer.key,
        scorer_name=scorer.name,
        scored=scored.height,
        changed=changed,
        grades=grades,
        metrics=scorer.metrics,
    )
    _record_run(session, counts, actor, started)
    session.commit()
    logger.info(
        "scored %s open cases as of %s with %s: %s changed",
        counts.scored,
        day,
        scorer.key,
        changed,
    )
    return counts


def _record_run(
    session: Session, counts: ScoreCounts, actor: Actor | None, started: datetime
) -> None:
    stored = {
        "scored": counts.scored,
        "changed": counts.changed,
        "grades": counts.grades,
        "model": counts.scorer_name,
        "metrics": counts.metrics,
    }
    session.execute(
        text(
            "INSERT INTO score_runs (day, scorer, counts, actor_name, started_at) "
            "VALUES (:day, :scorer, CAST(:counts AS jsonb), :actor, :started) "
            "ON CONFLICT (day) DO UPDATE SET scorer = excluded.scorer, "
            "counts = excluded.counts, actor_name = excluded.actor_name, "
            "started_at = excluded.started_at, finished_at = now()"
        ),
        {
            "day": counts.day,
            "scorer": counts.scorer,
            "counts": _json(stored),
            "actor": actor.username if actor else SYSTEM_ACTOR,
            "started": started,
        },
    )
    audit.record(
        session,
        actor,
        "cases_scored",
        "score_run",
        counts.day.isoformat(),
        detail={"scorer": counts.scorer, **stored},
        actor_name=None if actor else SYSTEM_ACTOR,
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def nightly_job(session: Session, day: date) -> ScoreCounts:
    """Score the open cases for the worker. A day already scored by the same scorer
    is not scored again, so a retry or a second worker does no harm."""
    scorer_key = _current_scorer_key(session)
    run = session.scalar(select(ScoreRun).where(ScoreRun.day == day))
    if run is not None and run.scorer == scorer_key:
        return ScoreCounts(
            day=day,
            scorer=run.scorer,
            scorer_name=run.counts.get("model", run.scorer),
            scored=run.counts.get("scored", 0),
            changed=0,
            grades=run.counts.get("grades", {}),
            skipped=True,
            metrics=run.counts.get("metrics", {}),
        )
    return score_open_cases(session=session, day=day)


def _current_scorer_key(session: Session) -> str:
    champion = session.scalar(
        select(ModelVersion.id).where(ModelVersion.status == "champion")
    )
    if champion is not None:
        return f"model:{champion}"
    return f"scorecard:{current_scorecard(session).version}"


def latest_run(*, session: Session, actor: Actor) -> ScoreRun | None:
    require_role(actor, *MANAGERS)
    return session.scalar(select(ScoreRun).order_by(ScoreRun.day.desc()).limit(1))


def grade_distribution(*, session: Session, actor: Actor) -> dict[str, int]:
    """Return the number of open cases per grade; `-` counts cases not yet scored."""
    require_role(actor, *MANAGERS)
    rows = session.execute(
        select(Case.risk_grade, func.count())
        .where(Case.status.in_(OPEN_STATUSES))
        .group_by(Case.risk_grade)
    ).all()
    counts = {grade: 0 for grade in (*GRADES, "-")}
    for grade, count in rows:
        counts[grade or "-"] = count
    return counts


# One case's explanation


@dataclass
class Explanation:
    case_id: int
    score: Decimal | None
    grade: str | None
    model: str | None
    scored_on: date | None
    factors: list[dict[str, Any]]
    # The scorecard's points lines, when the scorecard scored the case.
    lines: list[PointsLine] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "score": None if self.score is None else f"{self.score:.2f}",
            "grade": self.grade,
            "model": self.model,
            "scored_on": self.scored_on.isoformat() if self.scored_on else None,
            "factors": self.factors,
            "lines": [line.__dict__ for line in self.lines],
        }


def _check_case_access(case: Case, actor: Actor) -> None:
    require_role(actor, *CASE_READERS)
    if actor.role == "collector" and case.collector_id != actor.id:
        raise PermissionDenied("case_not_yours", case_no=case.case_no)
    if actor.role == "team_lead" and case.team_id != actor.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)


def explain_case(*, session: Session, actor: Actor, case_id: int) -> Explanation:
    """Return a case's score, grade, the model that gave them and its top factors;
    for the scorecard, every points line as well."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    _check_case_access(case, actor)
    stored = session.get(CaseScore, case_id)
    if stored is None:
        return Explanation(case_id, None, None, None, None, [])

    name, lines = stored.scorer, []
    kind, _, number = stored.scorer.partition(":")
    if kind == "scorecard":
        view = current_scorecard(session, version=int(number))
        name = f"scorecard v{view.version}"
        frame = feature_sql.build_features(
            session, stored.scored_on, scope="any", case_ids=[case_id]
        )
        if frame.height:
            lines = score_case_points(
                scorecard=view.scorecard, features=frame.row(0, named=True)
            )
    else:
        model = session.get(ModelVersion, int(number))
        name = model.name if model else stored.scorer
    return Explanation(
        case_id=case_id,
        score=stored.score,
        grade=stored.grade,
        model=name,
        scored_on=stored.scored_on,
        factors=list(stored.factors),
        lines=lines,
    )
