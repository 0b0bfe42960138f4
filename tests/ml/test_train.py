"""Training: labels come from later events, an embargo as long as the label horizon separates
training rows from the holdout, and each model beats its baseline on the holdout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from ml.labels import CHURN_HORIZON, FRAUD_HORIZON, churn_labels, fraud_labels, retry_labels
from ml.train import SPECS, datasets, split_in_time
from tests.support.history import small_silver, trained_small

T = "provider_created_at"


@pytest.mark.parametrize("kind", ["fraud", "retry", "churn"])
def test_model_beats_its_baseline_on_a_small_history(kind: str) -> None:
    model = trained_small()[kind]
    metric = model.spec.primary_metric
    assert model.metrics[metric] > model.baseline_metrics[metric], (
        kind,
        model.metrics,
        model.baseline_metrics,
    )


def test_recommended_retry_delay_beats_the_best_fixed_delay() -> None:
    metrics = trained_small()["retry"].metrics
    assert metrics["policy_success_rate"] > metrics["fixed_delay_success_rate"]


def test_holdout_comes_after_training_in_time() -> None:
    model = trained_small()["churn"]
    assert model.holdout[T].min() > small_silver()[T].min() + timedelta(days=7)
    assert model.info["rows_train"] > model.holdout.height > 0


@pytest.mark.parametrize("kind", ["fraud", "retry", "churn"])
def test_no_training_row_has_a_label_window_reaching_into_the_holdout(kind: str) -> None:
    data = datasets(small_silver(), (kind,))[kind]
    horizon = SPECS[kind].horizon
    assert data.train.height > 0 and data.holdout.height > 0
    assert data.train[T].max() + horizon < data.holdout[T].min()


def test_the_embargo_drops_training_rows_and_the_holdout_is_a_share_of_what_remains() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = pl.DataFrame({T: pl.datetime_range(start, start + timedelta(days=60), "1h", eager=True)})
    data = split_in_time(rows, share=0.25, embargo=timedelta(days=20))
    cut = start + timedelta(days=50)  # the last quarter of the 40 days left after the embargo
    assert data.holdout[T].min() == cut and data.holdout[T].max() == rows[T].max()
    assert data.train[T].max() == cut - timedelta(days=20, hours=1)
    assert data.train.height + data.holdout.height == rows.height - 20 * 24


def test_a_history_shorter_than_the_embargo_leaves_the_task_out() -> None:
    silver = small_silver()
    short = silver.filter(pl.col(T) < silver[T].min() + timedelta(days=40))
    assert set(datasets(short)) == {"retry"}  # fraud and churn labels look 30 days ahead


def test_fraud_label_is_a_later_fraudulent_dispute_of_the_same_charge() -> None:
    silver = small_silver()
    labels = fraud_labels(silver).join(silver.select("event_id", "charge_id", T), on="event_id")
    disputes = silver.filter(pl.col("dispute_reason") == "fraudulent").select(
        "charge_id", pl.col(T).alias("disputed_at")
    )
    checked = labels.join(disputes, on="charge_id", how="left").with_columns(
        in_time=(pl.col("disputed_at") > pl.col(T))
        & (pl.col("disputed_at") <= pl.col(T) + FRAUD_HORIZON)
    )
    positives, negatives = (
        checked.filter(pl.col("label") == 1),
        checked.filter(pl.col("label") == 0),
    )
    assert positives.height > 20
    assert positives["in_time"].all()
    assert not negatives["in_time"].fill_null(False).any()


def test_retry_label_is_the_outcome_of_the_next_attempt_of_the_order() -> None:
    silver = small_silver()
    labels = retry_labels(silver)
    assert labels.height > 500
    assert labels["delay_hours"].min() > 0
    assert 0.1 < labels["label"].mean() < 0.9


def test_churn_label_means_no_successful_payment_in_the_next_30_days() -> None:
    silver = small_silver()
    labels = churn_labels(silver).join(silver.select("event_id", "customer_id", T), on="event_id")
    successes = silver.filter(pl.col("event_type") == "payment.succeeded").select(
        "customer_id", pl.col(T).alias("paid_at")
    )
    churned = labels.filter(pl.col("label") == 1).join(successes, on="customer_id")
    later = churned.filter(
        (pl.col("paid_at") > pl.col(T)) & (pl.col("paid_at") <= pl.col(T) + CHURN_HORIZON)
    )
    assert labels["label"].sum() > 50
    assert later.is_empty()
    assert labels[T].max() <= silver[T].max() - CHURN_HORIZON
