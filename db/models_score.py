"""Models of risk scoring: scorecard versions, trained model versions, scoring runs
and the latest score of each case with its top factors."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

MODEL_KINDS = ("logistic", "boosting")
MODEL_SOURCES = ("history", "file")
MODEL_STATUSES = ("challenger", "champion", "retired")
GRADES = ("A", "B", "C", "D", "E")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class ScorecardVersion(Base):
    """One saved version of the scorecard's points and grade bands; the highest
    version is in force."""

    __tablename__ = "scorecard_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    # Base points and one entry per characteristic with its bins and points.
    points: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Lowest score of grades A, B, C and D; a lower score is grade E.
    bands: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ModelVersion(Base):
    """A trained propensity model with its evaluation figures and serialised form.

    `content` is the joblib dump of the fitted model; `sha256` is checked before it
    is loaded. Only Recova's training service writes it.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(_in("kind", MODEL_KINDS), name="kind"),
        CheckConstraint(_in("source", MODEL_SOURCES), name="source"),
        CheckConstraint(_in("status", MODEL_STATUSES), name="status"),
        # At most one champion at a time.
        Index(
            "ix_model_versions_one_champion",
            "status",
            unique=True,
            postgresql_where=text("status = 'champion'"),
        ),
        Index(None, "training_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Models trained in one run share it, so the page can compare them.
    training_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), server_default="challenger")
    # The input columns in the order the model reads them.
    features: Mapped[list[str]] = mapped_column(JSONB)
    # True when every feature is one that Recova computes for its cases.
    usable_on_cases: Mapped[bool]
    # False when the evaluation AUC is under the promotion minimum.
    offered: Mapped[bool]
    # The better model of its training run, when it is offered.
    proposed: Mapped[bool] = mapped_column(server_default=text("false"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    training: Mapped[dict[str, Any]] = mapped_column(JSONB)
    bands: Mapped[dict[str, Any]] = mapped_column(JSONB)
    seed: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    promoted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    promoted_at: Mapped[datetime | None]


class ScoreRun(Base):
    """One scoring of the open cases as of a day; a day is scored once per scorer."""

    __tablename__ = "score_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    # "scorecard:<version>" or "model:<id>".
    scorer: Mapped[str] = mapped_column(String(32))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CaseScore(Base):
    """The latest score of a case, with the factors that explain it most.

    No foreign key to cases, like the case history: the nightly run writes a million
    rows at once and cases are never deleted.
    """

    __tablename__ = "case_scores"
    __table_args__ = (CheckConstraint(_in("grade", GRADES), name="grade"),)

    case_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The day of the run that last changed this row; a run that gives the same
    # score, grade and factors leaves the row as it is.
    scored_on: Mapped[date] = mapped_column(Date)
    scorer: Mapped[str] = mapped_column(String(32))
    score: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    grade: Mapped[str] = mapped_column(String(1))
    # Up to three {feature, value, effect} entries, largest effect first.
    factors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
