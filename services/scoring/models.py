"""Propensity models: training, per-case factors, evaluation and serialisation.

Two kinds are trained on the same rows. `logistic` is a logistic regression on
quantile bins of each numeric feature, plus a bin for missing values, and on the
frequent values of each categorical one. A case's factors are then the coefficients
of its bins relative to the training average. `boosting` is scikit-learn's
HistGradientBoostingClassifier, explained through a linear surrogate over the same
bins (see PropensityModel).

A fitted model is stored as joblib bytes. joblib is pickle underneath, so loading
runs code from the bytes: Recova loads only bytes that its own training service
wrote, and checks their SHA-256 first. skops would refuse unknown types instead, but
it needs a trusted-type list for this module's classes and another dependency.
"""

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import polars as pl
import sklearn
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# A model whose evaluation AUC is under this is not offered for promotion.
MIN_AUC = 0.55
MODEL_KINDS = ("logistic", "boosting")
QUANTILES = (0.2, 0.4, 0.6, 0.8)
MAX_CATEGORIES = 30
MIN_CATEGORY_ROWS = 5
OTHER = "(other)"
MISSING = "(missing)"


def _numbers(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame.get_column(name).cast(pl.Float64).to_numpy()


def _texts(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame.get_column(name).cast(pl.String).to_numpy()


def _frequent_values(values: np.ndarray) -> list[str]:
    present = values[values != np.array(None)]
    names, counts = np.unique(present.astype(str), return_counts=True)
    order = sorted(zip(-counts, names, strict=True))
    return [name for count, name in order if -count >= MIN_CATEGORY_ROWS][
        :MAX_CATEGORIES
    ]


@dataclass
class BinnedEncoder:
    """Quantile bins per numeric feature and frequent values per categorical one."""

    numeric: list[str]
    categorical: list[str]
    edges: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)

    def fit(self, frame: pl.DataFrame) -> "BinnedEncoder":
        for name in self.numeric:
            column = _numbers(frame, name)
            present = column[~np.isnan(column)]
            cuts = np.quantile(present, QUANTILES) if present.size else np.array([])
            self.edges[name] = np.unique(cuts)
        for name in self.categorical:
            self.values[name] = _frequent_values(_texts(frame, name))
        return self

    def labels(self, name: str) -> list[str]:
        """Return the bin labels of a feature, in the order of `bin_index`."""
        if name in self.values:
            return [*self.values[name], OTHER, MISSING]
        edges = [f"{edge:g}" for edge in self.edges[name]]
        if not edges:
            return ["all", MISSING]
        inner = [
            f"({low}, {high}]" for low, high in zip(edges, edges[1:], strict=False)
        ]
        return [f"≤ {edges[0]}", *inner, f"> {edges[-1]}", MISSING]

    def bin_index(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        """Return each row's bin of feature `name`; the last bin is missing values."""
        labels = self.labels(name)
        if name in self.values:
            lookup = {value: index for index, value in enumerate(self.values[name])}
            return (
                frame.get_column(name)
                .cast(pl.String)
                .replace_strict(lookup, default=len(labels) - 2, return_dtype=pl.Int64)
                .fill_null(len(labels) - 1)
                .to_numpy()
            )
        column = _numbers(frame, name)
        index = np.searchsorted(self.edges[name], column, side="left")
        return np.where(np.isnan(column), len(labels) - 1, index)

    def columns(self, frame: pl.DataFrame) -> np.ndarray:
        """Return, per row and feature, the position of the row's bin among all bins."""
        positions, offset = [], 0
        for name in self.numeric + self.categorical:
            positions.append(offset + self.bin_index(frame, name))
            offset += len(self.labels(name))
        return np.column_stack(positions)

    def transform(self, frame: pl.DataFrame) -> sparse.csr_matrix:
        """Return the one-hot bins as a sparse matrix (one 1 per row and feature)."""
        positions = self.columns(frame)
        width = sum(len(self.labels(name)) for name in self.numeric + self.categorical)
        rows, features = positions.shape
        return sparse.csr_matrix(
            (
                np.ones(rows * features),
                positions.ravel(),
                np.arange(0, rows * features + 1, features),
            ),
            shape=(rows, width),
        )


@dataclass
class PropensityModel:
    """A fitted model with what it needs to score and explain new rows.

    Both kinds explain a row with a linear model over the same bins. For `logistic`
    it is the model itself. For `boosting` it is a ridge regression fitted to the
    boosting model's log-odds on the training rows, so its factors approximate what
    drives the boosting score. A factor is the bin's coefficient minus the training
    average of that feature's coefficients.
    """

    kind: str
    numeric: list[str]
    categorical: list[str]
    seed: int
    estimator: Any = None
    encoder: BinnedEncoder | None = None
    # Coefficient per bin of the linear model that explains rows, and the training
    # mean of each feature's coefficient.
    explainer: np.ndarray | None = None
    baseline: np.ndarray | None = None
    codes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        columns = [_numbers(frame, name) for name in self.numeric]
        for name in self.categorical:
            lookup = {value: float(i) for i, value in enumerate(self.codes[name])}
            columns.append(
                frame.get_column(name)
                .cast(pl.String)
                .replace_strict(
                    lookup,
                    default=float(len(self.codes[name])),
                    return_dtype=pl.Float64,
                )
                .to_numpy()
            )
        return np.column_stack(columns) if columns else np.zeros((frame.height, 0))

    def fit(self, frame: pl.DataFrame, label: np.ndarray) -> "PropensityModel":
        self.encoder = BinnedEncoder(self.numeric, self.categorical).fit(frame)
        bins = self.encoder.transform(frame)
        if self.kind == "logistic":
            self.estimator = LogisticRegression(C=1.0, max_iter=5000)
            self.estimator.fit(bins, label)
            self.explainer = self.estimator.coef_[0]
        else:
            self._fit_boosting(frame, label)
            surrogate = Ridge(alpha=1.0).fit(bins, self._boosting_logit(frame))
            self.explainer = surrogate.coef_
        self.baseline = self._effects(frame).mean(axis=0)
        return self

    def _fit_boosting(self, frame: pl.DataFrame, label: np.ndarray) -> None:
        for name in self.categorical:
            self.codes[name] = _frequent_values(_texts(frame, name))
        matrix = self._matrix(frame)
        self.estimator = HistGradientBoostingClassifier(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            categorical_features=[
                position >= len(self.numeric) for position in range(matrix.shape[1])
            ],
            random_state=self.seed,
        )
        self.estimator.fit(matrix, label)

    def _boosting_logit(self, frame: pl.DataFrame) -> np.ndarray:
        return self.estimator.decision_function(self._matrix(frame))

    def _effects(self, frame: pl.DataFrame) -> np.ndarray:
        return self.explainer[self.encoder.columns(frame)]

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Return each row's probability of a payment (the positive class)."""
        if frame.height == 0:
            return np.zeros(0)
        if self.kind == "logistic":
            # The sum of the rows' bin coefficients, without building the matrix.
            logit = self.estimator.intercept_[0] + self._effects(frame).sum(axis=1)
        else:
            logit = self._boosting_logit(frame)
        return 1 / (1 + np.exp(-logit))

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """Return one row per case and one column per feature: the feature's effect
        on the case's log-odds of paying, relative to the training average."""
        if frame.height == 0:
            return np.zeros((0, len(self.features)))
        return self._effects(frame) - self.baseline


def train(
    kind: str,
    frame: pl.DataFrame,
    label: np.ndarray,
    *,
    numeric: list[str],
    categorical: list[str],
    seed: int,
) -> PropensityModel:
    model = PropensityModel(
        kind=kind, numeric=list(numeric), categorical=list(categorical), seed=seed
    )
    return model.fit(frame, label)


def plain_logistic_auc(
    train_frame: pl.DataFrame,
    train_label: np.ndarray,
    test_frame: pl.DataFrame,
    test_label: np.ndarray,
    *,
    numeric: list[str],
    categorical: list[str],
) -> float:
    """Return the test AUC of a logistic regression on all raw columns: numeric ones
    scaled (missing values set to the training median), categorical ones one-hot."""

    def numbers(frame: pl.DataFrame) -> np.ndarray:
        if not numeric:
            return np.zeros((frame.height, 0))
        return np.column_stack([_numbers(frame, name) for name in numeric])

    def texts(frame: pl.DataFrame) -> np.ndarray:
        if not categorical:
            return np.zeros((frame.height, 0), dtype=object)
        columns = [
            np.array([MISSING if v is None else v for v in _texts(frame, name)])
            for name in categorical
        ]
        return np.column_stack(columns).astype(object)

    medians = np.nanmedian(numbers(train_frame), axis=0) if numeric else np.zeros(0)

    def filled(frame: pl.DataFrame) -> np.ndarray:
        matrix = numbers(frame)
        return np.where(np.isnan(matrix), medians, matrix)

    scaler = StandardScaler().fit(filled(train_frame))
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    encoder.fit(texts(train_frame))

    def design(frame: pl.DataFrame) -> np.ndarray:
        return np.hstack(
            [scaler.transform(filled(frame)), encoder.transform(texts(frame))]
        )

    estimator = LogisticRegression(max_iter=5000).fit(design(train_frame), train_label)
    return float(
        roc_auc_score(test_label, estimator.predict_proba(design(test_frame))[:, 1])
    )


def evaluate(label: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    """Return AUC, KS, lift by decile and a calibration table.

    Deciles run from the highest predicted probability (decile 1) down. The
    calibration table splits the rows into ten groups by predicted probability.
    """
    label = np.asarray(label, dtype=float)
    false_positive, true_positive, _ = roc_curve(label, probability)
    base_rate = float(label.mean())
    order = np.argsort(-probability, kind="stable")
    lift = []
    for decile, rows in enumerate(np.array_split(order, 10), start=1):
        rate = float(label[rows].mean()) if rows.size else 0.0
        lift.append(
            {
                "decile": decile,
                "rows": int(rows.size),
                "payers": int(label[rows].sum()),
                "rate": round(rate, 4),
                "lift": round(rate / base_rate, 3) if base_rate else 0.0,
            }
        )
    calibration = []
    for group, rows in enumerate(np.array_split(order[::-1], 10), start=1):
        if not rows.size:
            continue
        calibration.append(
            {
                "group": group,
                "rows": int(rows.size),
                "predicted": round(float(probability[rows].mean()), 4),
                "observed": round(float(label[rows].mean()), 4),
            }
        )
    return {
        "auc": round(float(roc_auc_score(label, probability)), 4),
        "ks": round(float(np.max(true_positive - false_positive)), 4),
        "rows": int(label.size),
        "payers": int(label.sum()),
        "base_rate": round(base_rate, 4),
        "lift": lift,
        "calibration": calibration,
    }


def dump(model: PropensityModel) -> tuple[bytes, str]:
    """Return the model's joblib bytes and their SHA-256."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    content = buffer.getvalue()
    return content, hashlib.sha256(content).hexdigest()


def load(content: bytes, sha256: str) -> PropensityModel:
    """Load a model dumped by `dump`; raise ValueError when the bytes changed."""
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ValueError("stored model bytes do not match their SHA-256")
    return joblib.load(io.BytesIO(content))


def library_versions() -> dict[str, str]:
    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__}
