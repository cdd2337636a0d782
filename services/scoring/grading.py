"""Grades A to E from score bands: A is the most likely to pay."""

from decimal import Decimal

import numpy as np
import polars as pl
from pydantic import BaseModel, model_validator

GRADES = ("A", "B", "C", "D", "E")


class GradeBands(BaseModel):
    """Lowest score of grades A to D; a score under `D` is grade E."""

    A: Decimal
    B: Decimal
    C: Decimal
    D: Decimal

    @model_validator(mode="after")
    def _check_order(self) -> "GradeBands":
        if not self.A > self.B > self.C > self.D:
            raise ValueError("band minimums must fall from A to D")
        return self

    def grade(self, score: Decimal | float) -> str:
        value = Decimal(str(score))
        for grade in GRADES[:-1]:
            if value >= getattr(self, grade):
                return grade
        return "E"

    def grade_expression(self, score: pl.Expr) -> pl.Expr:
        expression = pl.when(score >= float(self.A)).then(pl.lit("A"))
        for grade in GRADES[1:-1]:
            expression = expression.when(score >= float(getattr(self, grade))).then(
                pl.lit(grade)
            )
        return expression.otherwise(pl.lit("E"))


def bands_from_scores(scores: np.ndarray) -> GradeBands:
    """Return bands that put about a fifth of `scores` in each grade.

    Used as a trained model's starting bands; managers can edit them afterwards.
    """
    cuts = np.quantile(scores, [0.8, 0.6, 0.4, 0.2])
    values = [Decimal(str(round(float(cut), 2))) for cut in cuts]
    # Tied quantiles would make two equal minimums; spread them by a cent.
    for index in range(1, len(values)):
        if values[index] >= values[index - 1]:
            values[index] = values[index - 1] - Decimal("0.01")
    return GradeBands(A=values[0], B=values[1], C=values[2], D=values[3])
