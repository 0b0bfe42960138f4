"""The labelled synthetic history: Stripe-shaped, deterministic, in time order, accepted by silver
as is, and carrying the structure the models are meant to find."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from ml.features import build_features, with_retry_delay
from ml.labels import retry_labels
from ml.metrics import delay_bucket
from simulator.history import RETRY_DELAYS_H, generate_history
from tests.support.history import END, history_bronze, small_silver
from transforms.events import to_silver

TINY = {"days": 5, "customers": 60, "seed": 3, "end": END}


def test_history_is_deterministic_and_in_time_order() -> None:
    events = list(generate_history(**TINY))
    assert events == list(generate_history(**TINY))
    created = [e["created"] for e in events]
    assert created == sorted(created)
    assert (END - timedelta(days=5)).timestamp() <= created[0] and created[-1] < END.timestamp()


def test_history_events_are_stripe_events() -> None:
    for event in generate_history(**TINY):
        assert event["id"].startswith("evt_") and event["object"] == "event"
        assert event["data"]["object"]["id"].split("_")[0] in ("pi", "ch", "re", "dp")
        merchant = event.get("account") or event["data"]["object"]["metadata"].get("merchant_id")
        assert merchant or event["type"].startswith("charge.dispute")


def test_history_goes_through_silver_without_rejections() -> None:
    events = list(generate_history(**TINY))
    split = to_silver(history_bronze(events), processed_at=END)
    assert split.counts == {
        "bronze": len(events),
        "events": len(events),
        "quarantine": 0,
        "not_modelled": 0,
        "duplicates_in_batch": 0,
    }


def test_every_retry_delay_is_tried_and_pay_day_decides_insufficient_funds() -> None:
    silver = small_silver()
    rows = build_features(silver).join(retry_labels(silver), on="event_id")
    rows = with_retry_delay(rows, pl.col("delay_hours"))
    tried = {RETRY_DELAYS_H[i] for i in delay_bucket(rows["delay_hours"].to_numpy())}
    assert tried == set(RETRY_DELAYS_H)
    funds = rows.filter(pl.col("decline_code_cat") == 0.0)  # insufficient_funds
    crossed = (
        pl.sum_horizontal(
            "retry_crosses_friday", "retry_crosses_month_start", "retry_crosses_mid_month"
        )
        > 0
    )
    assert funds.filter(crossed)["label"].mean() > funds.filter(~crossed)["label"].mean() + 0.3


def test_fraud_shows_in_new_cards_and_bursts() -> None:
    silver = small_silver()
    disputed = silver.filter(pl.col("dispute_reason") == "fraudulent")["charge_id"]
    rows = build_features(silver.filter(pl.col("event_type") == "charge.succeeded"), silver)
    rows = rows.join(silver.select("event_id", "charge_id"), on="event_id").with_columns(
        fraud=pl.col("charge_id").is_in(disputed.implode())
    )
    fraud, legit = rows.filter(pl.col("fraud")), rows.filter(~pl.col("fraud"))
    assert fraud["card_is_new"].mean() > 3 * legit["card_is_new"].mean()
    assert fraud["c_attempts_1h"].mean() > 5 * legit["c_attempts_1h"].mean()
