"""gold.merchant_daily: merchant × UTC day × currency aggregates of the money events moved."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms import merchant_daily, to_silver
from transforms.merchant_daily import for_gold
from warehouse.tables import GOLD_MERCHANT_DAILY

DAY = datetime(2024, 7, 1, 23, 0, tzinfo=UTC)
UPDATED = datetime(2024, 7, 3, tzinfo=UTC)


def silver(*specs: tuple, **overrides) -> pl.DataFrame:
    rng = random.Random(4)
    events = [
        make_stripe_event(t, rng=rng, amount=a, currency=c, created=at, account=m, **overrides)
        for t, a, c, at, m in specs
    ]
    return to_silver(bronze_frame(events), processed_at=UPDATED).events


@pytest.fixture
def events() -> pl.DataFrame:
    late = DAY + timedelta(minutes=90)  # next UTC day
    return silver(
        ("payment_intent.succeeded", 1000, "usd", DAY, "acct_a"),
        ("payment_intent.succeeded", 2505, "usd", DAY, "acct_a"),
        ("payment_intent.payment_failed", 700, "usd", DAY, "acct_a"),
        ("refund.created", 1000, "usd", DAY, "acct_a"),
        ("charge.dispute.created", 2505, "usd", DAY, "acct_a"),
        ("charge.succeeded", 1000, "usd", DAY, "acct_a"),  # not a payment event
        ("payment_intent.succeeded", 1500, "jpy", DAY, "acct_a"),
        ("payment_intent.canceled", 900, "usd", late, "acct_a"),
        ("payment_intent.succeeded", 14510, "kwd", late, "acct_b"),
    )


def test_one_row_per_merchant_day_and_currency_with_the_table_columns(
    events: pl.DataFrame,
) -> None:
    daily = merchant_daily(events, None, updated_at=UPDATED)
    assert daily.columns == GOLD_MERCHANT_DAILY.column_names
    assert daily.select("merchant_id", "day", "currency").rows() == [
        ("acct_a", DAY.date(), "JPY"),
        ("acct_a", DAY.date(), "USD"),
        ("acct_a", DAY.date() + timedelta(days=1), "USD"),
        ("acct_b", DAY.date() + timedelta(days=1), "KWD"),
    ]


def test_volumes_counts_and_rates(events: pl.DataFrame) -> None:
    usd = merchant_daily(events, None, updated_at=UPDATED).row(1, named=True)
    assert (usd["volume_minor"], usd["volume"]) == (3505, Decimal("35.05"))
    assert (usd["payments_succeeded"], usd["payments_failed"], usd["payments_canceled"]) == (
        2,
        1,
        0,
    )
    assert (usd["refunds"], usd["disputes"]) == (1, 1)
    assert (usd["refund_volume_minor"], usd["refund_volume"]) == (1000, Decimal("10.00"))
    assert (usd["dispute_volume_minor"], usd["dispute_volume"]) == (2505, Decimal("25.05"))
    assert (usd["refund_rate"], usd["dispute_rate"]) == (1000 / 3505, 2505 / 3505)
    assert usd["mean_fraud_score"] is None and usd["updated_at"] == UPDATED


def test_rates_are_null_without_succeeded_payments_and_volume_is_exact(
    events: pl.DataFrame,
) -> None:
    daily = merchant_daily(events, None, updated_at=UPDATED)
    canceled_only, kwd = daily.row(2, named=True), daily.row(3, named=True)
    assert (canceled_only["volume"], canceled_only["refund_rate"]) == (Decimal("0"), None)
    assert kwd["volume"] == Decimal("14.51")


def test_mean_fraud_score_joins_scores_by_event_id(events: pl.DataFrame) -> None:
    ids = events.filter(pl.col("currency") == "USD")["event_id"].to_list()
    scores = pl.DataFrame({"event_id": ids[:2], "fraud_score": [0.2, 0.4]})
    usd = merchant_daily(events, scores, updated_at=UPDATED).row(1, named=True)
    assert usd["mean_fraud_score"] == pytest.approx(0.3)


def test_volume_is_what_payments_received_and_refund_volume_what_was_refunded() -> None:
    partial = make_stripe_event(
        "charge.refunded", amount=10_000, currency="usd", amount_refunded=3_000, created=DAY
    )
    refund = make_stripe_event("refund.created", amount=3_000, currency="usd", created=DAY)
    paid = make_stripe_event(
        "payment_intent.succeeded",
        amount=10_000,
        amount_received=9_000,
        currency="usd",
        created=DAY,
    )
    for e in (partial, refund, paid):
        e["account"] = "acct_a"
    events = to_silver(bronze_frame([partial, refund, paid]), processed_at=UPDATED).events
    day = merchant_daily(events, None, updated_at=UPDATED).row(0, named=True)
    assert (day["volume_minor"], day["refund_volume_minor"]) == (9_000, 3_000)
    assert day["refund_rate"] == pytest.approx(3_000 / 9_000)


def test_test_mode_events_are_left_out_of_gold_unless_kept() -> None:
    live = silver(("payment_intent.succeeded", 1000, "usd", DAY, "acct_a"))
    test = silver(("payment_intent.succeeded", 5000, "usd", DAY, "acct_a"), livemode=False)
    both = pl.concat([live, test])
    assert test["livemode"].to_list() == [False]

    daily = merchant_daily(for_gold(both, include_test_mode=False), None, updated_at=UPDATED)
    kept = merchant_daily(for_gold(both, include_test_mode=True), None, updated_at=UPDATED)
    assert daily["volume_minor"].to_list() == [1000]
    assert kept["volume_minor"].to_list() == [6000]
