"""Silver events (and gold scores) -> ``gold.merchant_daily``.

Grain: one row per merchant × UTC day of ``provider_created_at`` × currency. The table is
rebuilt per day partition, so pass every silver event of the days being rebuilt (the result for
a day is only complete if its input is). Events without a merchant are not attributed.

Money is the money each event moved (silver's ``amount_minor``): the volume is what succeeded
PaymentIntents received, refund volume what ``refund.created`` refunded, dispute volume what
``dispute.created`` disputed; the rates are those volumes over the day's volume.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.schemas import AMOUNT, GOLD_MERCHANT_DAILY, TS, conform

KEYS = ("merchant_id", "day", "currency")
#: The silver columns ``merchant_daily`` reads (and the scores' ``event_id``, ``fraud_score``).
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "merchant_id",
    "currency",
    "amount_minor",
    "amount",
    "provider_created_at",
    "livemode",
)
SCORE_COLUMNS = ("event_id", "fraud_score")


def _count(event_type: str) -> pl.Expr:
    return (pl.col("event_type") == event_type).sum().cast(pl.Int64)


def _rate(numerator: str, denominator: str) -> pl.Expr:
    den = pl.col(denominator)
    return pl.when(den > 0).then(pl.col(numerator) / den).cast(pl.Float64)


def _volume(event_type: str, name: str) -> list[pl.Expr]:
    """Sum of the money moved by ``event_type`` events: ``{name}_minor`` and ``{name}``."""
    of_type = pl.col("event_type") == event_type
    return [
        pl.col("amount_minor").filter(of_type).sum().cast(pl.Int64).alias(f"{name}_minor"),
        pl.col("amount").filter(of_type).sum().cast(AMOUNT).alias(name),
    ]


def for_gold(events: pl.DataFrame, include_test_mode: bool) -> pl.DataFrame:
    """The silver events gold scores and aggregates: live ones only unless ``include_test_mode``
    (rows from before ``livemode`` was kept count as live)."""
    if include_test_mode or "livemode" not in events.columns:
        return events
    return events.filter(pl.col("livemode").fill_null(True))


def merchant_daily(
    events: pl.DataFrame | pl.LazyFrame,
    scores: pl.DataFrame | pl.LazyFrame | None,
    *,
    updated_at: datetime,
) -> pl.DataFrame:
    """Daily merchant aggregates: succeeded payment, refund and dispute volumes, counts by
    outcome, refund and dispute rates (their volume over the succeeded volume of the same day;
    null when there was none) and the mean fraud score of the day's scored events (``scores``
    joined by ``event_id``). Pass the events ``for_gold`` keeps."""
    if updated_at.tzinfo is None:
        raise ValueError("updated_at must be timezone-aware")
    frame = events.lazy().filter(pl.col("merchant_id").is_not_null())
    if scores is not None:
        fraud = scores.lazy().select(SCORE_COLUMNS)
        frame = frame.join(fraud, on="event_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("fraud_score"))
    daily = (
        frame.with_columns(pl.col("provider_created_at").dt.date().alias("day"))
        .group_by(KEYS)
        .agg(
            *_volume("payment.succeeded", "volume"),
            *_volume("refund.created", "refund_volume"),
            *_volume("dispute.created", "dispute_volume"),
            _count("payment.succeeded").alias("payments_succeeded"),
            _count("payment.failed").alias("payments_failed"),
            _count("payment.canceled").alias("payments_canceled"),
            _count("refund.created").alias("refunds"),
            _count("dispute.created").alias("disputes"),
            pl.col("fraud_score").mean().alias("mean_fraud_score"),
        )
        .with_columns(
            _rate("refund_volume_minor", "volume_minor").alias("refund_rate"),
            _rate("dispute_volume_minor", "volume_minor").alias("dispute_rate"),
            pl.lit(updated_at).cast(TS).alias("updated_at"),
        )
        .sort(KEYS)
        .collect()
    )
    return conform(daily, GOLD_MERCHANT_DAILY)
