"""Features are point-in-time correct: nothing at or after an event's second changes them, and a
scoring-time history trimmed to the look-back gives the training-time values. Amounts are only
compared with amounts of the same currency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml.features import (
    AMOUNT_FEATURES,
    LOOKBACK,
    build_features,
    history_start,
    with_retry_delay,
)
from tests.support.history import small_silver

T = "provider_created_at"


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("event_id")


def test_features_of_past_events_do_not_change_when_the_future_arrives() -> None:
    silver = small_silver()
    cut = silver[T].min() + timedelta(days=40)
    past = silver.filter(pl.col(T) < cut)
    alone = build_features(past)
    with_future = build_features(silver).filter(
        pl.col("event_id").is_in(past["event_id"].implode())
    )
    assert_frame_equal(_sorted(alone), _sorted(with_future))


def test_a_later_event_of_the_same_customer_card_order_and_merchant_is_not_seen() -> None:
    silver = small_silver()
    payments = silver.filter(pl.col("event_type") == "payment.succeeded")
    event = payments.row(payments.height // 2, named=True)
    same_second = {**event, "event_id": "stripe:evt_same_second"}
    later = {**event, "event_id": "stripe:evt_later", T: event[T] + timedelta(seconds=1)}
    dispute = {
        **later,
        "event_id": "stripe:evt_dispute",
        "event_type": "dispute.created",
        "dispute_reason": "fraudulent",
    }
    extra = pl.DataFrame([same_second, later, dispute], schema=silver.schema)
    target = pl.col("event_id") == event["event_id"]
    before = build_features(silver).filter(target)
    after = build_features(pl.concat([silver, extra])).filter(target)
    assert_frame_equal(before, after)


def test_an_earlier_event_is_seen() -> None:
    silver = small_silver()
    payments = silver.filter(pl.col("event_type") == "payment.succeeded")
    event = payments.row(payments.height // 2, named=True)
    earlier = {**event, "event_id": "stripe:evt_earlier", T: event[T] - timedelta(seconds=1)}
    target = pl.col("event_id") == event["event_id"]
    before = build_features(silver).filter(target)
    after = build_features(pl.concat([silver, pl.DataFrame([earlier], schema=silver.schema)]))
    after = after.filter(target)
    assert after["c_attempts_1h"].item() == before["c_attempts_1h"].item() + 1
    assert after["c_hours_since_success"].item() == pytest.approx(1 / 3600)


def test_scoring_with_a_trimmed_history_gives_the_training_features() -> None:
    silver = small_silver()
    start = silver[T].max() - timedelta(days=3)
    batch = silver.filter(pl.col(T) >= start)
    history = silver.filter(pl.col(T) >= start - LOOKBACK - timedelta(hours=1))
    scored = build_features(batch, history)
    trained = build_features(silver).filter(pl.col(T) >= start)
    assert scored["event_id"].to_list() == batch["event_id"].to_list()
    assert_frame_equal(_sorted(scored), _sorted(trained))


def test_scoring_with_the_history_from_history_start_gives_the_training_features() -> None:
    # a card used 36 days before the batch and again 6.5 days before it: the second use is not a
    # new card (it was seen within 30 days), which only a history reaching 36 days back shows
    silver = small_silver()
    template = silver.filter(pl.col("event_type") == "payment.succeeded").row(0, named=True)
    now = silver[T].max() + timedelta(days=60)
    card = {**template, "customer_id": "cus_edge", "card_brand": "visa", "card_last_four": "4242"}
    frame = pl.DataFrame(
        [
            {**card, "event_id": "stripe:evt_first_use", T: now - timedelta(days=36)},
            {**card, "event_id": "stripe:evt_again", T: now - timedelta(days=6, hours=12)},
            {**card, "event_id": "stripe:evt_now", T: now},
        ],
        schema=silver.schema,
    )
    batch = frame.filter(pl.col(T) == now)
    history = frame.filter(pl.col(T) >= history_start(batch))
    scored = build_features(batch, history)
    assert_frame_equal(scored, build_features(batch, frame))
    assert scored["c_new_cards_7d"].item() == 0


@pytest.mark.parametrize(
    ("failed_at", "delay", "friday", "month_start", "mid_month"),
    [
        (datetime(2025, 1, 30, 17, tzinfo=UTC), 72.0, 1.0, 1.0, 0.0),  # Thu -> Sun 2 Feb
        (datetime(2025, 1, 30, 17, tzinfo=UTC), 1.0, 0.0, 0.0, 0.0),
        (datetime(2025, 1, 14, 17, tzinfo=UTC), 24.0, 0.0, 0.0, 1.0),  # Tue 14th -> 15th
    ],
)
def test_retry_delay_features_say_which_paydays_the_wait_crosses(
    failed_at: datetime, delay: float, friday: float, month_start: float, mid_month: float
) -> None:
    event = {
        "event_id": "stripe:evt_1",
        "event_type": "payment.failed",
        "customer_id": "cus_1",
        "customer_country": "GB",
        "amount": 10.0,
        T: failed_at,
    }
    rows = with_retry_delay(build_features(pl.DataFrame([event])), delay)
    assert rows["delay_hours"].item() == delay
    assert rows["retry_crosses_friday"].item() == friday
    assert rows["retry_crosses_month_start"].item() == month_start
    assert rows["retry_crosses_mid_month"].item() == mid_month


def _shopper(customer: str, merchant: str, currency: str, scale: float) -> list[dict]:
    """A customer's month at one merchant: payments of varying size (``scale`` × the base
    amounts, in ``currency``'s major units), a failure and a refund, one card."""
    start = datetime(2025, 1, 1, 9, tzinfo=UTC)
    base = (40.0, 55.0, 38.0, 120.0, 42.0, 47.0, 300.0, 44.0)
    rows = [
        {
            "event_id": f"{customer}:{i}",
            "event_type": "payment.failed" if i == 5 else "payment.succeeded",
            "merchant_id": merchant,
            "customer_id": customer,
            "charge_id": f"{customer}:ch{i}",
            "amount": amount * scale,
            "currency": currency,
            "card_brand": "visa",
            "card_last_four": "4242",
            "card_country": "US",
            "customer_country": "US",
            T: start + timedelta(days=3 * i, hours=i),
        }
        for i, amount in enumerate(base)
    ]
    refund = {**rows[3], "event_id": f"{customer}:refund", "event_type": "refund.created"}
    return [*rows, {**refund, T: rows[3][T] + timedelta(days=1)}]


def test_two_customers_identical_but_for_currency_get_the_same_features() -> None:
    usd = _shopper("cus_usd", "acct_usd", "USD", 1.0)
    jpy = _shopper("cus_jpy", "acct_jpy", "JPY", 153.0)  # the same baskets, priced in yen
    feats = build_features(pl.DataFrame([*usd, *jpy]))
    keys = ["event_id", "merchant_id", "customer_id"]
    one = feats.filter(pl.col("customer_id") == "cus_usd").drop(keys)
    other = feats.filter(pl.col("customer_id") == "cus_jpy").drop(keys)
    assert_frame_equal(one, other)
    assert one.select(AMOUNT_FEATURES).drop_nulls().height > 3  # the ratios are worked out


def test_payments_in_another_currency_do_not_change_a_customers_amount_features() -> None:
    usd = _shopper("cus_1", "acct_1", "USD", 1.0)
    # the same customer also pays in yen and dinars, at the same merchant and at another
    other = [
        {**row, "event_id": f"{row['event_id']}:{currency}", "currency": currency,
         "merchant_id": merchant, "amount": row["amount"] * scale,
         T: row[T] + timedelta(hours=5)}
        for currency, merchant, scale in (("JPY", "acct_1", 150.0), ("KWD", "acct_2", 0.31))
        for row in usd
    ]  # fmt: skip
    alone = build_features(pl.DataFrame(usd))
    ids = [row["event_id"] for row in usd]
    mixed = build_features(pl.DataFrame([*usd, *other])).filter(pl.col("event_id").is_in(ids))
    assert_frame_equal(alone.select(AMOUNT_FEATURES), mixed.select(AMOUNT_FEATURES))
    # the other currencies' payments are seen, as payments: they count, their amounts do not
    assert (mixed["c_attempts_30d"] > alone["c_attempts_30d"]).any()
