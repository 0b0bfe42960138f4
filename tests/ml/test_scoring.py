"""Batch scoring for gold: exact gold columns, scoring with and without champions, the retry
recommendation, and scores reproducible for a fixed model version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml import registry
from ml.features import LOOKBACK, build_features, with_retry_delay
from ml.metrics import CANDIDATE_DELAYS_H
from ml.scoring import ELIGIBLE_TYPES, MODEL_NAMES, score_events, stale_scores
from tests.support.history import small_silver, trained_small
from tests.support.mlflow_store import mlflow_store
from warehouse.tables import GOLD_PAYMENT_SCORES

T = "provider_created_at"
NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _batch() -> tuple[pl.DataFrame, pl.DataFrame]:
    silver = small_silver()
    start = silver[T].max() - timedelta(days=2)
    return (
        silver.filter(pl.col(T) >= start),
        silver.filter(pl.col(T) >= start - LOOKBACK - timedelta(days=1)),
    )


@pytest.fixture
def champions(isolated_settings: Path) -> dict[str, registry.Champion | None]:
    mlflow_store(isolated_settings)
    for model in trained_small().values():
        registry.register_model(model)
    return {name: registry.load_champion(name) for name in MODEL_NAMES}


def test_scores_have_the_gold_columns_and_one_row_per_eligible_event(champions) -> None:
    events, history = _batch()
    result = score_events(events, history, champions, scored_at=NOW)
    scores = result.scores
    assert result.missing_models == ()
    assert scores.columns == GOLD_PAYMENT_SCORES.column_names
    assert scores.schema == pl.from_arrow(GOLD_PAYMENT_SCORES.arrow_schema.empty_table()).schema
    eligible = events.filter(pl.col("event_type").is_in(ELIGIBLE_TYPES))
    assert scores["event_id"].to_list() == eligible["event_id"].to_list()
    fraud = scores.filter(pl.col("event_type").is_in(["payment.succeeded", "charge.succeeded"]))
    retry = scores.filter(pl.col("event_type") == "payment.failed")
    assert (
        fraud["fraud_score"].is_between(0, 1).all()
        and fraud["fraud_model_version"].null_count() == 0
    )
    assert retry["fraud_score"].is_null().all() and fraud["retry_delay_hours"].is_null().all()
    assert retry["retry_delay_hours"].is_in(list(CANDIDATE_DELAYS_H)).all()
    assert retry["retry_success_probability"].is_between(0, 1).all()
    assert scores["churn_score"].is_between(0, 1).all()
    assert set(scores["churn_model"].unique()) == {"payments-churn"}


def test_without_a_champion_its_scores_are_null_and_reported_missing(isolated_settings) -> None:
    events, history = _batch()
    champions = {name: registry.load_champion(name) for name in MODEL_NAMES}  # empty registry
    result = score_events(events, history, champions, scored_at=NOW)
    assert result.missing_models == MODEL_NAMES
    assert result.scores.height == events.filter(pl.col("event_type").is_in(ELIGIBLE_TYPES)).height
    for column in ("fraud_score", "retry_delay_hours", "churn_score", "churn_model_version"):
        assert result.scores[column].is_null().all()


def test_one_missing_champion_does_not_stop_the_others(champions) -> None:
    events, history = _batch()
    result = score_events(events, history, {**champions, "payments-retry": None}, scored_at=NOW)
    assert result.missing_models == ("payments-retry",)
    assert result.scores["retry_delay_hours"].is_null().all()
    assert result.scores["churn_score"].null_count() == 0


def test_retry_recommends_the_delay_with_the_highest_predicted_success(champions) -> None:
    events, history = _batch()
    scores = score_events(events, history, champions, scored_at=NOW).scores
    failed = events.filter(pl.col("event_type") == "payment.failed")
    features = build_features(failed, pl.concat([events, history]))
    retry = champions["payments-retry"]
    grid = np.column_stack(
        [retry.predict(with_retry_delay(features, float(d))) for d in CANDIDATE_DELAYS_H]
    )
    chosen = scores.filter(pl.col("event_type") == "payment.failed")
    assert chosen.height == failed.height > 10
    best = np.asarray(CANDIDATE_DELAYS_H)[grid.argmax(axis=1)]
    np.testing.assert_array_equal(chosen["retry_delay_hours"].to_numpy(), best)
    np.testing.assert_allclose(chosen["retry_success_probability"].to_numpy(), grid.max(axis=1))
    assert len(set(best)) > 1  # the recommendation depends on the failure


def test_scores_are_reproducible_for_a_fixed_model_version(champions) -> None:
    events, history = _batch()
    again = {name: registry.load_version(name, c.version) for name, c in champions.items() if c}
    first = score_events(events, history, champions, scored_at=NOW).scores
    second = score_events(events, history, again, scored_at=NOW).scores
    assert_frame_equal(first, second)


def test_a_champion_trained_on_features_no_longer_built_counts_as_missing(champions) -> None:
    events, history = _batch()
    fraud = champions["payments-fraud"]
    assert fraud is not None
    # a version of an older release, when the amount feature was the raw log_amount
    old = registry.Champion(fraud.name, "old", fraud.booster, ("log_amount", *fraud.features[1:]))
    mixed = {**champions, "payments-fraud": old}
    result = score_events(events, history, mixed, scored_at=NOW)
    assert result.missing_models == ("payments-fraud",)
    assert result.scores["fraud_score"].is_null().all()
    assert result.scores["churn_score"].null_count() == 0
    assert stale_scores(result.scores, mixed).is_empty()  # nothing a rescore could do yet


def test_a_score_row_is_stale_where_a_champion_scores_it_with_another_or_no_version() -> None:
    def champion(name: str, version: str) -> registry.Champion:
        return registry.Champion(name, version, None, ("card_is_new",))  # type: ignore[arg-type]

    rows = pl.DataFrame(
        {
            "event_id": ["new", "current", "replaced", "failed", "guest"],
            "event_type": ["payment.succeeded"] * 3 + ["payment.failed", "charge.succeeded"],
            "customer_id": ["cus_1"] * 4 + [None],
            "fraud_model_version": [None, "2", "1", None, "2"],
            "retry_model_version": [None, None, None, "7", None],
            "churn_model_version": [None, "3", "3", "3", None],
        }
    )
    champions = {"payments-fraud": champion("payments-fraud", "2"), "payments-retry": None}
    champions["payments-churn"] = champion("payments-churn", "3")
    assert stale_scores(rows, champions).to_list() == ["new", "replaced"]
    champions["payments-retry"] = champion("payments-retry", "8")
    assert stale_scores(rows, champions).to_list() == ["new", "replaced", "failed"]
