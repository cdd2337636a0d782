"""The scorecard: a points table over a case's features, readable line by line.

A case's score is the base points plus one line per characteristic; the lines add up
to the score. Numeric characteristics have bins with an inclusive upper bound (the
last bin has none), and `product` has points per product name. A missing value, such
as the days since the last contact of a case never contacted, gets `missing` points.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, model_validator

from services.scoring.grading import GradeBands

ScorecardFeature = Literal[
    "dpd",
    "balance",
    "product",
    "payments",
    "paid_amount",
    "promises_kept",
    "promises_broken",
    "ever_reached",
    "days_since_contact",
]
CATEGORICAL = ("product",)


class PointsBin(BaseModel):
    """Points for values up to `upper` (inclusive) and above the previous bin's."""

    upper: Decimal | None = None
    points: int = Field(ge=-1000, le=1000)


class Characteristic(BaseModel):
    feature: ScorecardFeature
    bins: list[PointsBin] = Field(default_factory=list, max_length=20)
    categories: dict[str, int] = Field(default_factory=dict)
    other: int = Field(default=0, ge=-1000, le=1000)
    missing: int = Field(default=0, ge=-1000, le=1000)

    @model_validator(mode="after")
    def _check_bins(self) -> "Characteristic":
        if self.feature in CATEGORICAL:
            if self.bins:
                raise ValueError(f"{self.feature} takes points per value, not bins")
            return self
        if not self.bins or self.bins[-1].upper is not None:
            raise ValueError(f"{self.feature}: the last bin must have no upper bound")
        uppers = [item.upper for item in self.bins[:-1]]
        if any(value is None for value in uppers) or uppers != sorted(set(uppers)):
            raise ValueError(f"{self.feature}: upper bounds must rise from bin to bin")
        return self

    def bin_label(self, index: int) -> str:
        lower = self.bins[index - 1].upper if index > 0 else None
        upper = self.bins[index].upper
        if lower is None:
            return f"≤ {upper}" if upper is not None else "all"
        if upper is None:
            return f"> {lower}"
        return f"({lower}, {upper}]"


class Scorecard(BaseModel):
    base: int = Field(ge=-1000, le=1000)
    characteristics: list[Characteristic] = Field(min_length=1, max_length=30)
    bands: GradeBands

    @model_validator(mode="after")
    def _check_unique(self) -> "Scorecard":
        features = [item.feature for item in self.characteristics]
        if len(features) != len(set(features)):
            raise ValueError("each feature may appear once")
        return self


def _bins(*pairs: tuple[int | None, int]) -> list[PointsBin]:
    return [
        PointsBin(upper=None if upper is None else Decimal(upper), points=points)
        for upper, points in pairs
    ]


# A starting table: recent, small, paying and reachable debts score high.
DEFAULT_SCORECARD = Scorecard(
    base=50,
    characteristics=[
        Characteristic(
            feature="dpd",
            bins=_bins((30, 20), (60, 10), (90, 5), (180, -5), (None, -15)),
        ),
        Characteristic(
            feature="balance",
            bins=_bins((2000, 10), (5000, 5), (20000, 0), (50000, -5), (None, -10)),
        ),
        Characteristic(feature="product", categories={}, other=0, missing=0),
        Characteristic(feature="payments", bins=_bins((0, -5), (1, 10), (None, 15))),
        Characteristic(feature="paid_amount", bins=_bins((0, 0), (1000, 3), (None, 6))),
        Characteristic(feature="promises_kept", bins=_bins((0, 0), (None, 10))),
        Characteristic(
            feature="promises_broken", bins=_bins((0, 0), (1, -5), (None, -10))
        ),
        Characteristic(feature="ever_reached", bins=_bins((0, -10), (None, 10))),
        Characteristic(
            feature="days_since_contact",
            bins=_bins((3, 5), (7, 3), (30, 0), (None, -5)),
            missing=-5,
        ),
    ],
    bands=GradeBands(A=Decimal(80), B=Decimal(65), C=Decimal(50), D=Decimal(35)),
)


@dataclass(frozen=True)
class PointsLine:
    """One line of a case's score: the feature, its value, the bin and the points."""

    feature: str
    value: Any
    bin: str
    points: int


def _line(item: Characteristic, value: Any) -> PointsLine:
    if value is None:
        return PointsLine(item.feature, None, "missing", item.missing)
    if item.feature in CATEGORICAL:
        points = item.categories.get(str(value))
        if points is None:
            return PointsLine(item.feature, value, "other", item.other)
        return PointsLine(item.feature, value, str(value), points)
    number = Decimal(str(value))
    for index, entry in enumerate(item.bins):
        if entry.upper is None or number <= entry.upper:
            return PointsLine(item.feature, value, item.bin_label(index), entry.points)
    raise AssertionError("the last bin has no upper bound")


def score_case_points(
    *, scorecard: Scorecard, features: dict[str, Any]
) -> list[PointsLine]:
    """Return the points lines of one case; the score is the sum of their points."""
    lines = [PointsLine("base", None, "", scorecard.base)]
    for item in scorecard.characteristics:
        lines.append(_line(item, features.get(item.feature)))
    return lines


def _points_expression(item: Characteristic) -> pl.Expr:
    column = pl.col(item.feature)
    if item.feature in CATEGORICAL:
        mapped = column.replace_strict(
            item.categories, default=item.other, return_dtype=pl.Int64
        )
        return pl.when(column.is_null()).then(item.missing).otherwise(mapped)
    expression = pl.when(column.is_null()).then(pl.lit(item.missing))
    for entry in item.bins[:-1]:
        expression = expression.when(column <= float(entry.upper)).then(
            pl.lit(entry.points)
        )
    return expression.otherwise(pl.lit(item.bins[-1].points))


def score_frame(scorecard: Scorecard, features: pl.DataFrame) -> pl.DataFrame:
    """Return case_id, score and one `points_<feature>` column per characteristic."""
    points = [
        _points_expression(item).cast(pl.Int64).alias(f"points_{item.feature}")
        for item in scorecard.characteristics
    ]
    frame = features.select("case_id", *points)
    columns = [f"points_{item.feature}" for item in scorecard.characteristics]
    return frame.with_columns(
        score=(pl.sum_horizontal(columns) + scorecard.base).cast(pl.Float64)
    )


# The points as a table, one row per bin or product, for the page's grid editor

ROW_KINDS = ("bin", "value", "other", "missing")


def scorecard_to_rows(scorecard: Scorecard) -> list[dict[str, Any]]:
    """Return one row per bin, product value, `other` and `missing` entry."""
    rows: list[dict[str, Any]] = []
    for item in scorecard.characteristics:
        feature = item.feature
        if item.feature in CATEGORICAL:
            for value, points in item.categories.items():
                rows.append(
                    {
                        "feature": feature,
                        "kind": "value",
                        "bound": value,
                        "points": points,
                    }
                )
            rows.append(
                {"feature": feature, "kind": "other", "bound": "", "points": item.other}
            )
        else:
            for entry in item.bins:
                bound = "" if entry.upper is None else str(entry.upper)
                rows.append(
                    {
                        "feature": feature,
                        "kind": "bin",
                        "bound": bound,
                        "points": entry.points,
                    }
                )
        rows.append(
            {"feature": feature, "kind": "missing", "bound": "", "points": item.missing}
        )
    return rows


def scorecard_from_rows(
    rows: list[dict[str, Any]], base: int, bands: GradeBands
) -> Scorecard:
    """Build a scorecard from table rows; raise ValueError naming a bad row."""
    characteristics: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        feature, kind = row.get("feature"), row.get("kind")
        if kind not in ROW_KINDS:
            raise ValueError(
                f"row {number}: kind must be one of {', '.join(ROW_KINDS)}"
            )
        try:
            points = int(row.get("points"))
        except (TypeError, ValueError):
            raise ValueError(f"row {number}: points must be a whole number") from None
        entry = characteristics.setdefault(
            feature, {"feature": feature, "bins": [], "categories": {}}
        )
        bound = str(row.get("bound") or "").strip()
        if kind == "bin":
            entry["bins"].append({"upper": bound or None, "points": points})
        elif kind == "value":
            if not bound:
                raise ValueError(f"row {number}: a value row needs the product name")
            entry["categories"][bound] = points
        else:
            entry[kind] = points
    return Scorecard.model_validate(
        {
            "base": base,
            "characteristics": list(characteristics.values()),
            "bands": bands,
        }
    )
