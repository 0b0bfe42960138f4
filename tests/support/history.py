"""The small labelled history, run through the real bronze → silver transform, and the models
trained on it (each built once per test session)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

import polars as pl

from ml.train import TrainedModel, train_all
from simulator.history import generate_history
from tests.support.bronze import bronze_frame, just_after_creation
from transforms.events import to_silver

END = datetime(2025, 3, 1, tzinfo=UTC)
#: Small enough to be quick, large enough for every model to find its structure, and long enough
#: for fraud and churn (labels 30 days ahead, as long an embargo before the holdout) to train.
SMALL = {"days": 100, "customers": 500, "seed": 11, "fraud_rate": 0.2}
#: Boosting rounds in tests (early stopping usually ends sooner).
ROUNDS = 150


def history_bronze(events: Iterable[dict]) -> pl.DataFrame:
    """Bronze rows of history events, each received a second after it was created."""
    return bronze_frame(events, received_at=just_after_creation)


def silver_of(events: Iterable[dict], processed_at: datetime = END) -> pl.DataFrame:
    """Silver rows of history events through the pipeline's own transform."""
    return to_silver(history_bronze(events), processed_at=processed_at).events


@lru_cache(maxsize=2)
def small_silver(**overrides: object) -> pl.DataFrame:
    """The small labelled history in silver, built once per test session."""
    params = {**SMALL, **overrides}
    return silver_of(generate_history(end=END, **params))  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def trained_small() -> dict[str, TrainedModel]:
    """The three models trained on the small history, once per test session."""
    return train_all(small_silver(), num_boost_round=ROUNDS)
