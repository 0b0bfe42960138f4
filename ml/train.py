"""Training: one LightGBM model per task on silver history, a time-based holdout, and a baseline.

Grain of a training set: fraud — one row per settled successful payment; retry — one row per
settled failed payment that was retried (the delay it was retried after is a feature); churn —
one row per settled payment attempt of a known customer. The first ``WARMUP`` of history is
skipped because its features cannot look back ``LOOKBACK`` yet.

The holdout is the last ``HOLDOUT_SHARE`` of the labelled period left after an **embargo** as
long as the task's label horizon (``ModelSpec.horizon``, from ``ml.labels``): a training row's
label is read from the events of the horizon after it, so a training row whose label window
reaches the holdout's first second would let the holdout's own events into training. Those rows
are dropped: every training row is more than one horizon before the holdout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import lightgbm as lgb
import numpy as np
import polars as pl

from ml import features as F
from ml import labels as L
from ml.metrics import BASELINE_FEATURES, baseline_predictor, evaluate, linear_predictor
from ml.names import CHURN, FRAUD, RETRY

#: The silver columns training reads: the features' and the labels' (a retry's order is its
#: ``metadata.order_id``, else its payment intent).
TRAINING_COLUMNS: tuple[str, ...] = (*F.INPUT_COLUMNS, "payment_intent_id")
HOLDOUT_SHARE = 0.25
WARMUP = timedelta(days=7)
NUM_THREADS = 2
PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": NUM_THREADS,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


@dataclass(frozen=True)
class ModelSpec:
    """A task: its registered name, features, label builder, how far after an event its label
    looks (the embargo before the holdout) and the metric champions compete on."""

    kind: str
    name: str
    features: tuple[str, ...]
    labeller: Callable[[pl.DataFrame], pl.DataFrame]
    horizon: timedelta
    primary_metric: str


SPECS: dict[str, ModelSpec] = {
    "fraud": ModelSpec("fraud", FRAUD, F.FRAUD_FEATURES, L.fraud_labels, L.FRAUD_HORIZON, "pr_auc"),
    "retry": ModelSpec("retry", RETRY, F.RETRY_FEATURES, L.retry_labels, L.RETRY_HORIZON, "auc"),
    "churn": ModelSpec("churn", CHURN, F.CHURN_FEATURES, L.churn_labels, L.CHURN_HORIZON, "auc"),
}


@dataclass
class Dataset:
    """Feature rows with a ``label`` (and ``delay_hours`` for retry), split in time."""

    train: pl.DataFrame
    holdout: pl.DataFrame


@dataclass
class TrainedModel:
    """A fitted model with its holdout metrics and its baseline's, ready to register."""

    spec: ModelSpec
    booster: lgb.Booster
    params: dict[str, object]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    linear_metrics: dict[str, float]
    holdout: pl.DataFrame
    train_seconds: float
    info: dict[str, object] = field(default_factory=dict)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return self.booster.predict(
            F.design_matrix(frame, self.spec.features), num_threads=NUM_THREADS
        )

    @property
    def beats_baseline(self) -> bool:
        metric = self.spec.primary_metric
        return self.metrics[metric] > self.baseline_metrics[metric]


def datasets(silver: pl.DataFrame, kinds: tuple[str, ...] = tuple(SPECS)) -> dict[str, Dataset]:
    """Features once for all of silver, joined to each task's labels and split in time with the
    task's embargo; a task whose history is too short for both sides is left out."""
    feats = F.build_features(silver)
    start = silver["provider_created_at"].min() + WARMUP
    out = {}
    for kind in kinds:
        spec = SPECS[kind]
        rows = feats.join(spec.labeller(silver), on="event_id", how="inner")
        rows = rows.filter(pl.col("provider_created_at") >= start)
        if kind == "retry":
            rows = F.with_retry_delay(rows, pl.col("delay_hours"))
        data = split_in_time(rows.sort("provider_created_at"), embargo=spec.horizon)
        if all(part["label"].n_unique() == 2 for part in (data.train, data.holdout)):
            out[kind] = data  # else too little history for this task's labels and embargo
    return out


def split_in_time(
    rows: pl.DataFrame, share: float = HOLDOUT_SHARE, embargo: timedelta = timedelta(0)
) -> Dataset:
    """The last ``share`` of the rows' time span less the ``embargo`` is the holdout; training
    rows are those more than ``embargo`` before its first second (empty when the span is shorter
    than the embargo)."""
    t = rows["provider_created_at"]
    if rows.is_empty() or t.max() - t.min() <= embargo:
        return Dataset(rows.clear(), rows.clear())
    cut = t.max() - (t.max() - t.min() - embargo) * share
    return Dataset(
        rows.filter(pl.col("provider_created_at") < cut - embargo),
        rows.filter(pl.col("provider_created_at") >= cut),
    )


def train_model(
    kind: str, data: Dataset, *, num_boost_round: int = 400, params: dict | None = None
) -> TrainedModel:
    """Fit LightGBM: early stopping on the last fifth of the training period picks the number of
    rounds, then a refit on the whole training period. Score the holdout; fit and score the
    baseline on the same rows. (The early-stopping split has no embargo: it only picks a number
    of rounds, and the holdout that decides promotion is embargoed.)"""
    spec = SPECS[kind]
    params = {**PARAMS, **(params or {})}
    started = time.perf_counter()
    early = split_in_time(data.train, 0.2)
    categorical = [i for i, n in enumerate(spec.features) if n in F.CATEGORICAL]
    probe = lgb.train(
        params,
        _lgb_data(early.train, spec, categorical),
        num_boost_round=num_boost_round,
        valid_sets=[_lgb_data(early.holdout, spec, categorical)],
        callbacks=[lgb.early_stopping(40, verbose=False)],
    )
    rounds = min(num_boost_round, max(20, round(probe.best_iteration * 1.2)))
    booster = lgb.train(params, _lgb_data(data.train, spec, categorical), num_boost_round=rounds)
    seconds = time.perf_counter() - started
    model = TrainedModel(spec, booster, params, {}, {}, {}, data.holdout, seconds)
    model.metrics = evaluate(kind, model.predict, data.holdout, data.train)
    baseline = baseline_predictor(kind, data.train)
    model.baseline_metrics = evaluate(kind, baseline, data.holdout, data.train)
    linear = linear_predictor(data.train, spec.features)
    model.linear_metrics = evaluate(kind, linear, data.holdout, data.train)
    model.info = {
        "baseline_model": f"logistic regression on {', '.join(BASELINE_FEATURES[kind])}",
        "rounds": rounds,
        "rows_train": data.train.height,
        "rows_holdout": data.holdout.height,
        "train_until": str(data.train["provider_created_at"].max()),
        "holdout_from": str(data.holdout["provider_created_at"].min()),
        "embargo_days": spec.horizon / timedelta(days=1),
    }
    return model


def _lgb_data(rows: pl.DataFrame, spec: ModelSpec, categorical: list[int]) -> lgb.Dataset:
    return lgb.Dataset(
        F.design_matrix(rows, spec.features),
        label=rows["label"].to_numpy(),
        feature_name=list(spec.features),
        categorical_feature=categorical,
        free_raw_data=False,
    )


def train_all(
    silver: pl.DataFrame, kinds: tuple[str, ...] = tuple(SPECS), **kwargs: object
) -> dict[str, TrainedModel]:
    """Train every task on one silver history."""
    return {
        kind: train_model(kind, data, **kwargs) for kind, data in datasets(silver, kinds).items()
    }
