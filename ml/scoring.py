"""Batch scoring for ``gold.payment_scores``: features once, one prediction per model per batch.

Grain of ``ScoreResult.scores``: one row per eligible event of the batch (``ELIGIBLE_TYPES``), in
batch order, with exactly the columns of ``gold.payment_scores``:

- fraud: successful payments and charges (``payment.succeeded``, ``charge.succeeded``);
- retry: failed payments — the candidate delay with the highest predicted success, and that
  probability (all candidates in the same prediction call);
- churn: every eligible event of a known customer, the customer's churn risk at event time.

A model without a champion leaves its columns null and is listed in ``missing_models``; scoring
never raises for that. Nor for a champion trained on features that are no longer built (renamed
or dropped since): it counts as missing (``servable``) until training replaces it. MLflow is not
imported here: champions come in as arguments.

``stale_scores`` says which score rows a champion should have scored but did not (written before
it was registered, or by a version since replaced): what ``rescore`` scores again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import polars as pl

from ml.features import (
    CHARGE_SUCCEEDED,
    FAILED,
    SUCCEEDED,
    build_features,
    feature_names,
    select_inputs,
)
from ml.metrics import CANDIDATE_DELAYS_H, recommend
from ml.names import CHURN, FRAUD, MODEL_NAMES, RETRY
from transforms.schemas import GOLD_PAYMENT_SCORES

if TYPE_CHECKING:
    from ml.registry import Champion

FRAUD_TYPES = (SUCCEEDED, CHARGE_SUCCEEDED)
RETRY_TYPES = (FAILED,)
ELIGIBLE_TYPES = (*FRAUD_TYPES, *RETRY_TYPES)
#: The eligible events each model scores (its columns stay null on the others).
SCORED_BY: dict[str, pl.Expr] = {
    FRAUD: pl.col("event_type").is_in(FRAUD_TYPES),
    RETRY: pl.col("event_type").is_in(RETRY_TYPES),
    CHURN: pl.col("customer_id").is_not_null(),
}
#: The prefix of each model's columns in ``gold.payment_scores``.
PREFIX = {FRAUD: "fraud", RETRY: "retry", CHURN: "churn"}
#: The score columns ``stale_scores`` reads.
STALE_COLUMNS = (
    "event_id",
    "event_type",
    "customer_id",
    *(f"{p}_model_version" for p in PREFIX.values()),
)
SCORE_SCHEMA: pl.Schema = GOLD_PAYMENT_SCORES.polars
T = TypeVar("T")
_KEYS = ("event_id", "event_type", "merchant_id", "customer_id", "provider_created_at")


@dataclass(frozen=True)
class ScoreResult:
    """Score rows (``gold.payment_scores`` columns), the models that had no champion, and the
    seconds spent per step (``features`` and each model name), for run artifacts and benchmarks."""

    scores: pl.DataFrame
    missing_models: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)


def score_events(
    events: pl.DataFrame,
    history: pl.DataFrame | None,
    champions: Mapping[str, Champion | None],
    *,
    scored_at: datetime,
) -> ScoreResult:
    """Score the eligible events of a silver batch.

    ``history``: silver rows from ``features.history_start(events)`` up to the batch's end;
    it may include the batch. ``champions``: registered model name → champion (or None).
    """
    if scored_at.tzinfo is None:
        raise ValueError("scored_at must be timezone-aware")
    champions = servable(champions)
    eligible = events.filter(pl.col("event_type").is_in(ELIGIBLE_TYPES))
    missing = tuple(name for name in MODEL_NAMES if champions.get(name) is None)
    if eligible.is_empty():
        return ScoreResult(_conform(eligible.select(_KEYS), scored_at), missing)
    clock = _Clock()
    context = select_inputs(events)
    if history is not None:
        context = pl.concat([context, select_inputs(history)])
    feats = clock("features", build_features, eligible, context)
    columns = {
        **clock(FRAUD, _single, feats, SCORED_BY[FRAUD], champions.get(FRAUD), PREFIX[FRAUD]),
        **clock(RETRY, _retry, feats, SCORED_BY[RETRY], champions.get(RETRY)),
        **clock(CHURN, _single, feats, SCORED_BY[CHURN], champions.get(CHURN), PREFIX[CHURN]),
    }
    scores = _conform(feats.select(_KEYS).with_columns(**columns), scored_at)
    return ScoreResult(scores, missing, clock.seconds)


def stale_scores(scores: pl.DataFrame, champions: Mapping[str, Champion | None]) -> pl.Series:
    """Event ids of the ``scores`` rows (``STALE_COLUMNS``) that a model with a champion scores
    (``SCORED_BY``) but whose version column is null or names another version."""
    stale = pl.lit(False)
    for name, champion in servable(champions).items():
        if champion is None:
            continue
        version = pl.col(f"{PREFIX[name]}_model_version")
        other = version.is_null() | (version != champion.version)
        stale = stale | (SCORED_BY[name].fill_null(False) & other)
    return scores.filter(stale)["event_id"]


def servable(champions: Mapping[str, Champion | None]) -> dict[str, Champion | None]:
    """``champions`` with None for those whose features are not all built any more."""
    built = feature_names()
    return {
        name: c if c is not None and set(c.features) <= built else None
        for name, c in champions.items()
    }


class _Clock:
    """Times each step it runs."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, step: str, fn: Callable[..., T], *args: object) -> T:
        started = time.perf_counter()
        result = fn(*args)
        self.seconds[step] = time.perf_counter() - started
        return result


def _single(
    feats: pl.DataFrame, where: pl.Expr, champion: Champion | None, prefix: str
) -> dict[str, pl.Series]:
    """One model's probability on the rows ``where`` holds (null elsewhere)."""
    mask = feats.select(where.fill_null(False)).to_series().to_numpy()
    scores = np.full(feats.height, np.nan)
    if champion is not None and mask.any():
        scores[mask] = champion.predict(feats.filter(pl.Series(mask)))
    return {f"{prefix}_score": _nullable(scores), **_model_columns(champion, prefix, mask)}


def _retry(feats: pl.DataFrame, where: pl.Expr, champion: Champion | None) -> dict[str, pl.Series]:
    """The best candidate delay and its success probability for each failed payment."""
    mask = feats.select(where.fill_null(False)).to_series().to_numpy()
    delay = np.full(feats.height, np.nan)
    probability = np.full(feats.height, np.nan)
    if champion is not None and mask.any():
        rows = feats.filter(pl.Series(mask))
        best, probability[mask] = recommend(champion.predict, rows, champion.features)
        delay[mask] = np.asarray(CANDIDATE_DELAYS_H)[best]
    return {
        "retry_delay_hours": _nullable(delay).cast(pl.Int32),
        "retry_success_probability": _nullable(probability),
        **_model_columns(champion, "retry", mask),
    }


def _model_columns(
    champion: Champion | None, prefix: str, mask: np.ndarray
) -> dict[str, pl.Series]:
    if champion is None:
        none = pl.Series([None] * len(mask), dtype=pl.String)
        return {f"{prefix}_model": none, f"{prefix}_model_version": none}
    scored = pl.Series(mask)
    name, version = pl.lit(champion.name), pl.lit(champion.version)
    return {
        f"{prefix}_model": pl.select(pl.when(scored).then(name)).to_series(),
        f"{prefix}_model_version": pl.select(pl.when(scored).then(version)).to_series(),
    }


def _nullable(values: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.Float64).fill_nan(None)


def _conform(frame: pl.DataFrame, scored_at: datetime) -> pl.DataFrame:
    """Exactly the columns and types of ``gold.payment_scores``."""
    frame = frame.with_columns(scored_at=pl.lit(scored_at))
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in SCORE_SCHEMA.items()
    )
