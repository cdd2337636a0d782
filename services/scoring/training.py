"""Training propensity models from Recova's history or from a file of outcomes."""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field, model_validator
from sklearn.model_selection import train_test_split
from sqlalchemy.orm import Session

from db.models_score import ModelVersion
from recova.errors import InvalidInput
from services import audit
from services.actors import MANAGERS, Actor, require_role
from services.files import FileRejected
from services.files.decode import sniff_format
from services.files.headers import (
    field_for_header,
    find_header_row,
    normalise_header,
    read_header,
)
from services.files.tables import read_tables
from services.scoring import features as feature_sql
from services.scoring import models
from services.scoring.grading import bands_from_scores
from services.segments import local_today

logger = logging.getLogger(__name__)

MIN_ROWS = 50
MAX_SNAPSHOTS = 60

# Column names of an outside file that mean one of Recova's features or a common
# credit attribute; other columns are kept under their own header.
FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "dpd": ("dpd", "days past due", "逾期天数", "dpd_at_placement"),
    "balance": ("balance", "outstanding", "余额", "剩余欠款"),
    "total_due": ("total_due", "amount", "credit_amount", "loan_amount", "欠款总额"),
    "product": ("product", "产品"),
    "payments": ("payments", "payment_count", "还款次数"),
    "paid_amount": ("paid_amount", "amount_paid", "已还金额"),
    "attempts": ("attempts", "calls", "催收次数"),
    "right_party": ("right_party", "rpc", "本人接通次数"),
    "age": ("age", "age_in_years", "年龄"),
    "duration": ("duration", "duration_in_month", "term", "期限"),
}
FILE_KEYS = {
    normalise_header(word): name
    for name, words in FILE_COLUMNS.items()
    for word in words
}
PLACEMENT_FIELDS = {
    "total_due": "total_due",
    "dpd_at_placement": "dpd",
    "product": "product",
}
POSITIVE_WORDS = {"1", "true", "yes", "y", "good", "paid", "pay", "是", "已还款", "好"}
NUMBER_SHARE = 0.9
CASE_FEATURE_SET = set(feature_sql.NUMERIC_FEATURES) | set(
    feature_sql.CATEGORICAL_FEATURES
)


class HistoryTrainInput(BaseModel):
    """Snapshots every `step_days` from `train_from` to `train_to`, evaluated at
    `evaluate_on`."""

    train_from: date
    train_to: date
    evaluate_on: date
    step_days: int = Field(default=7, ge=1, le=90)
    seed: int = Field(default=7, ge=0)

    @model_validator(mode="after")
    def _check_order(self) -> "HistoryTrainInput":
        if self.train_from > self.train_to:
            raise ValueError("train_from must not be after train_to")
        return self


class FileTrainInput(BaseModel):
    label: str = Field(min_length=1, max_length=200)
    # The label value that means the debtor paid; found from common words if unset.
    positive: str | None = None
    seed: int = Field(default=7, ge=0)
    test_share: float = Field(default=0.3, gt=0.05, lt=0.8)


@dataclass
class TrainingResult:
    training_id: str
    model_ids: list[int]
    proposed_id: int | None
    train_rows: int
    evaluation_rows: int
    metrics: dict[str, dict[str, Any]]
    # File training only: test AUC of a plain logistic regression on all raw columns.
    plain_logistic_auc: float | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "training_id": self.training_id,
            "model_ids": self.model_ids,
            "proposed_id": self.proposed_id,
            "train_rows": self.train_rows,
            "evaluation_rows": self.evaluation_rows,
            "metrics": self.metrics,
            "plain_logistic_auc": self.plain_logistic_auc,
            "columns": self.columns,
        }


def _snapshot_days(data: HistoryTrainInput) -> list[date]:
    days, day = [], data.train_from
    while day <= data.train_to:
        days.append(day)
        day += timedelta(days=data.step_days)
    return days


def _snapshot(session: Session, day: date) -> pl.DataFrame:
    frame = feature_sql.build_features(session, day, scope="history")
    return frame.with_columns(feature_sql.build_labels(session, day, frame["case_id"]))


def _check_outcomes(frame: pl.DataFrame, part: str) -> None:
    payers = int(frame["label"].sum()) if frame.height else 0
    if frame.height < MIN_ROWS or payers == 0 or payers == frame.height:
        raise InvalidInput(
            "score.not_enough_history",
            part=part,
            rows=frame.height,
            payers=payers,
            minimum=MIN_ROWS,
        )


def train_from_history(
    *, session: Session, actor: Actor, data: HistoryTrainInput
) -> TrainingResult:
    """Train both model kinds on snapshots of Recova's cases and store them as
    challengers, with their figures on the later evaluation date."""
    require_role(actor, *MANAGERS)
    label_days = feature_sql.LABEL_DAYS
    if data.evaluate_on < data.train_to + timedelta(days=label_days):
        raise InvalidInput(
            "score.evaluation_too_early",
            evaluate_on=data.evaluate_on,
            earliest=data.train_to + timedelta(days=label_days),
        )
    last_complete = local_today() - timedelta(days=label_days + 1)
    if data.evaluate_on > last_complete:
        raise InvalidInput(
            "score.label_window_open",
            evaluate_on=data.evaluate_on,
            latest=last_complete,
        )
    days = _snapshot_days(data)
    if len(days) > MAX_SNAPSHOTS:
        raise InvalidInput(
            "score.too_many_snapshots", count=len(days), maximum=MAX_SNAPSHOTS
        )

    train_frame = pl.concat([_snapshot(session, day) for day in days])
    evaluation = _snapshot(session, data.evaluate_on)
    _check_outcomes(train_frame, "train")
    _check_outcomes(evaluation, "evaluation")

    training = {
        "train_from": data.train_from.isoformat(),
        "train_to": data.train_to.isoformat(),
        "step_days": data.step_days,
        "snapshots": len(days),
        "evaluate_on": data.evaluate_on.isoformat(),
        "train_rows": train_frame.height,
        "evaluation_rows": evaluation.height,
    }
    return _train_and_store(
        session,
        actor,
        source="history",
        train_frame=train_frame,
        test_frame=evaluation,
        numeric=list(feature_sql.NUMERIC_FEATURES),
        categorical=list(feature_sql.CATEGORICAL_FEATURES),
        seed=data.seed,
        training=training,
        name=f"{data.train_from}…{data.train_to} → {data.evaluate_on}",
    )


def _train_and_store(
    session: Session,
    actor: Actor,
    *,
    source: str,
    train_frame: pl.DataFrame,
    test_frame: pl.DataFrame,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    training: dict[str, Any],
    name: str,
    plain_auc: float | None = None,
    columns: dict[str, str] | None = None,
) -> TrainingResult:
    train_label = train_frame["label"].to_numpy()
    test_label = test_frame["label"].to_numpy()
    training_id = str(uuid.uuid4())
    usable = set(numeric + categorical) <= CASE_FEATURE_SET
    rows, metrics = [], {}
    for kind in models.MODEL_KINDS:
        model = models.train(
            kind,
            train_frame,
            train_label,
            numeric=numeric,
            categorical=categorical,
            seed=seed,
        )
        probability = model.predict(test_frame)
        figures = models.evaluate(test_label, probability)
        if plain_auc is not None:
            figures["plain_logistic_auc"] = round(plain_auc, 4)
        content, sha256 = models.dump(model)
        row = ModelVersion(
            training_id=training_id,
            name=f"{kind} {name}",
            kind=kind,
            source=source,
            features=model.features,
            usable_on_cases=usable,
            offered=figures["auc"] >= models.MIN_AUC,
            metrics=figures,
            training={**training, "columns": columns or {}},
            bands=bands_from_scores(np.round(probability * 100, 2)).model_dump(
                mode="json"
            ),
            seed=seed,
            content=content,
            sha256=sha256,
            library_versions=models.library_versions(),
            created_by=actor.id,
        )
        rows.append(row)
        metrics[kind] = {"auc": figures["auc"], "ks": figures["ks"]}

    offered = [row for row in rows if row.offered]
    # Ties go to the logistic model, whose factors are easier to read.
    best = max(offered, key=lambda row: row.metrics["auc"], default=None)
    for row in rows:
        row.proposed = row is best
        session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "models_trained",
        "model_version",
        training_id,
        after={
            row.kind: {
                "id": row.id,
                "auc": row.metrics["auc"],
                "ks": row.metrics["ks"],
                "offered": row.offered,
            }
            for row in rows
        },
        detail={"source": source, **training},
    )
    session.commit()
    logger.info("models trained by %s from %s: %s", actor.username, source, metrics)
    return TrainingResult(
        training_id=training_id,
        model_ids=[row.id for row in rows],
        proposed_id=best.id if best else None,
        train_rows=train_frame.height,
        evaluation_rows=test_frame.height,
        metrics=metrics,
        plain_logistic_auc=None if plain_auc is None else round(plain_auc, 4),
        columns=columns or {},
    )


# Training from a file of outcomes


def _file_table(content: bytes, filename: str) -> pl.DataFrame:
    """Read the first table of a CSV or Excel file as text columns named by header."""
    try:
        tables = list(read_tables(content, sniff_format(content, filename)))
    except FileRejected as error:
        raise InvalidInput(f"file.{error.code}", **error.params) from error
    for table in tables:
        cells = table.cells
        header_row = find_header_row(cells)
        if header_row is None:
            filled = cells.select(pl.sum_horizontal(pl.all().is_not_null()))
            rows = [i for i, count in enumerate(filled.to_series()) if count >= 2]
            if not rows:
                continue
            header_row = rows[0]
        layout = read_header(cells, header_row)
        body = cells.slice(header_row + 1).select(
            f"c{index}" for index in layout.columns
        )
        body.columns = layout.headers
        body = body.filter(~pl.all_horizontal(pl.all().is_null()))
        if body.height:
            return body
    raise InvalidInput("file.no_data_rows")


def _feature_name(header: str) -> str:
    key = normalise_header(header)
    if key in FILE_KEYS:
        return FILE_KEYS[key]
    placement = PLACEMENT_FIELDS.get(field_for_header(header) or "")
    return placement or header


def _as_number(column: pl.Series) -> pl.Series | None:
    cleaned = column.str.strip_chars().str.replace_all(r"[,\s¥￥$元]", "")
    numbers = cleaned.cast(pl.Float64, strict=False)
    present = column.is_not_null().sum()
    if present and numbers.is_not_null().sum() >= NUMBER_SHARE * present:
        return numbers
    return None


def _labels(column: pl.Series, positive: str | None) -> pl.Series:
    values = column.str.strip_chars()
    distinct = sorted(values.drop_nulls().unique().to_list())
    if positive is None:
        known = [value for value in distinct if value.lower() in POSITIVE_WORDS]
        if len(distinct) != 2 or len(known) != 1:
            raise InvalidInput(
                "score.label_positive_unclear",
                values=", ".join(distinct[:10]),
            )
        positive = known[0]
    if positive not in distinct:
        raise InvalidInput(
            "score.label_value_missing",
            value=positive,
            values=", ".join(distinct[:10]),
        )
    return (values == positive).fill_null(False).cast(pl.Int8).alias("label")


def prepare_file(
    content: bytes, filename: str, data: FileTrainInput
) -> tuple[pl.DataFrame, list[str], list[str], dict[str, str]]:
    """Return the file's rows as features plus `label`, the numeric and categorical
    feature names, and the mapping from each header to its feature."""
    table = _file_table(content, filename)
    label_header = next(
        (
            header
            for header in table.columns
            if normalise_header(header) == normalise_header(data.label)
        ),
        None,
    )
    if label_header is None:
        raise InvalidInput(
            "score.label_column_missing",
            column=data.label,
            columns=", ".join(table.columns[:30]),
        )
    label = _labels(table[label_header], data.positive)

    columns, numeric, categorical, series = {}, [], [], []
    for header in table.columns:
        if header == label_header:
            continue
        name = _feature_name(header)
        if name in columns.values():
            name = header
        columns[header] = name
        number = _as_number(table[header])
        if number is not None:
            numeric.append(name)
            series.append(number.alias(name))
        else:
            categorical.append(name)
            series.append(table[header].str.strip_chars().alias(name))
    frame = pl.DataFrame([*series, label])
    return frame, numeric, categorical, columns


def train_from_file(
    *,
    session: Session,
    actor: Actor,
    content: bytes,
    filename: str,
    data: FileTrainInput,
) -> TrainingResult:
    """Train both model kinds on a file of past outcomes, split at random (stratified
    by the label), and store them as challengers."""
    require_role(actor, *MANAGERS)
    frame, numeric, categorical, columns = prepare_file(content, filename, data)
    _check_outcomes(frame, "file")
    label = frame["label"].to_numpy()
    train_rows, test_rows = train_test_split(
        np.arange(frame.height),
        test_size=data.test_share,
        random_state=data.seed,
        stratify=label,
    )
    train_frame, test_frame = frame[np.sort(train_rows)], frame[np.sort(test_rows)]
    plain = models.plain_logistic_auc(
        train_frame,
        train_frame["label"].to_numpy(),
        test_frame,
        test_frame["label"].to_numpy(),
        numeric=numeric,
        categorical=categorical,
    )
    training = {
        "file_name": filename,
        "label": data.label,
        "test_share": data.test_share,
        "train_rows": train_frame.height,
        "evaluation_rows": test_frame.height,
    }
    return _train_and_store(
        session,
        actor,
        source="file",
        train_frame=train_frame,
        test_frame=test_frame,
        numeric=numeric,
        categorical=categorical,
        seed=data.seed,
        training=training,
        name=filename,
        plain_auc=plain,
        columns=columns,
    )


def history_defaults(today: date | None = None) -> HistoryTrainInput:
    """Return a training window that ends so the evaluation labels are complete."""
    today = today or local_today()
    label = timedelta(days=feature_sql.LABEL_DAYS)
    evaluate_on = today - label - timedelta(days=1)
    train_to = evaluate_on - label
    return HistoryTrainInput(
        train_from=train_to - timedelta(days=84),
        train_to=train_to,
        evaluate_on=evaluate_on,
    )
