"""Holdout metrics (ranking, calibration, the retry policy) and the baselines models must beat.

A predictor is any ``Callable[[pl.DataFrame], np.ndarray]`` from feature rows to probabilities,
so the model, its baseline and a re-loaded champion are all scored by the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml import features as F

Predictor = Callable[[pl.DataFrame], np.ndarray]
#: Delays the retry model chooses from (hours).
CANDIDATE_DELAYS_H: tuple[int, ...] = (1, 6, 24, 72)


def evaluate(
    kind: str, predict: Predictor, holdout: pl.DataFrame, train: pl.DataFrame | None = None
) -> dict[str, float]:
    """AUC, PR-AUC, Brier, ECE and log loss on ``holdout``; for retry also the replayed success
    rate of the recommended delay against the best fixed delay (chosen on ``train``)."""
    y, p = holdout["label"].to_numpy(), np.clip(predict(holdout), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    metrics = {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "rows": float(len(y)),
    }
    if kind == "retry":
        metrics.update(retry_policy(predict, holdout, train if train is not None else holdout))
    return metrics


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted − observed| over equal-width probability bins, weighted by bin size."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return float(total / max(len(y), 1))


def delay_bucket(delay_hours: np.ndarray) -> np.ndarray:
    """Index of the candidate delay nearest (in log time) to each observed delay."""
    logs = np.log(np.asarray(CANDIDATE_DELAYS_H, dtype=float))
    return np.abs(np.log(np.maximum(delay_hours, 1e-3))[:, None] - logs[None, :]).argmin(axis=1)


def recommend(
    predict: Predictor, rows: pl.DataFrame, features: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each failed payment: index of the best candidate delay and its success probability,
    from one prediction over all (row, delay) pairs. ``features`` (the model's) narrows the rows
    stacked per delay to what the model reads."""
    if features is not None:
        rows = rows.select(*(f for f in features if f not in F.DELAY_FEATURES), "_clock")
    stacked = pl.concat([F.with_retry_delay(rows, float(d)) for d in CANDIDATE_DELAYS_H])
    grid = predict(stacked).reshape(len(CANDIDATE_DELAYS_H), rows.height).T
    best = grid.argmax(axis=1)
    return best, grid[np.arange(rows.height), best]


def retry_policy(
    predict: Predictor, holdout: pl.DataFrame, train: pl.DataFrame
) -> dict[str, float]:
    """Replay evaluation (delays in the history were drawn at random): success rate among holdout
    failures retried at the recommended delay, versus always waiting the delay that did best
    in training."""
    observed = delay_bucket(holdout["delay_hours"].to_numpy())
    y = holdout["label"].to_numpy()
    best, _ = recommend(predict, holdout)
    matched = observed == best
    train_bucket = delay_bucket(train["delay_hours"].to_numpy())
    train_y = train["label"].to_numpy()
    rates = [
        train_y[train_bucket == i].mean() if (train_bucket == i).any() else 0.0
        for i in range(len(CANDIDATE_DELAYS_H))
    ]
    fixed = int(np.argmax(rates))
    return {
        "policy_success_rate": float(y[matched].mean()) if matched.any() else float("nan"),
        "policy_matched_rows": float(matched.sum()),
        "fixed_delay_hours": float(CANDIDATE_DELAYS_H[fixed]),
        "fixed_delay_success_rate": float(y[observed == fixed].mean())
        if (observed == fixed).any()
        else float("nan"),
    }


#: What a simple rule looks at, per task: the baseline a model must beat.
BASELINE_FEATURES: dict[str, tuple[str, ...]] = {
    "fraud": (
        "log_amount_vs_currency",
        "is_foreign_card",
        "card_is_new",
        "local_hour",
        "c_attempts_24h",
    ),
    "retry": ("decline_code_cat", "delay_hours"),
    "churn": ("c_hours_since_success", "c_attempts_30d", "c_mean_amount_vs_currency_30d"),
}


def baseline_predictor(kind: str, train: pl.DataFrame) -> Predictor:
    """The baseline: a logistic regression on the few signals a rule would use
    (``BASELINE_FEATURES``): amount, foreign or new card, hour and velocity for fraud; decline
    code and delay for retry; recency, frequency and basket for churn."""
    return linear_predictor(train, BASELINE_FEATURES[kind])


def linear_predictor(train: pl.DataFrame, features: tuple[str, ...]) -> Predictor:
    """Logistic regression on ``features`` (median-imputed with missing flags, standardized;
    categories one-hot). On a model's own features it shows what a linear model makes of the
    same information."""
    numeric = [i for i, n in enumerate(features) if n not in F.CATEGORICAL]
    categorical = [i for i, n in enumerate(features) if n in F.CATEGORICAL]
    encode = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=2000))
    model.fit(F.design_matrix(train, features), train["label"].to_numpy())

    def predict(rows: pl.DataFrame) -> np.ndarray:
        return model.predict_proba(F.design_matrix(rows, features))[:, 1]

    return predict
