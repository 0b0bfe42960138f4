"""Labels from later events only, as they would come for real data: pure Polars over silver.

Each function returns the rows whose label is settled by ``as_of`` (default: the last event of
``silver``): an event is labelled only once its horizon has passed, so recent events are not
mistaken for negatives.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from ml.features import DISPUTE_CREATED, FAILED, SUCCEEDED

FRAUD_HORIZON = timedelta(days=30)  # a fraudulent dispute within 30 days of the payment
RETRY_HORIZON = timedelta(days=4)  # the next attempt of the order within 4 days of a failure
CHURN_HORIZON = timedelta(days=30)  # no successful payment of the customer in the next 30 days

_T = "provider_created_at"


def _settled(silver: pl.DataFrame, horizon: timedelta, as_of: datetime | None) -> pl.Expr:
    last = as_of or silver[_T].max()
    return pl.col(_T) <= last - horizon


def fraud_labels(silver: pl.DataFrame, as_of: datetime | None = None) -> pl.DataFrame:
    """One row per settled ``payment.succeeded``: ``event_id``, ``label`` = 1 when a dispute with
    reason fraudulent of the same charge followed within ``FRAUD_HORIZON``."""
    payments = silver.filter(
        (pl.col("event_type") == SUCCEEDED) & _settled(silver, FRAUD_HORIZON, as_of)
    )
    disputes = silver.filter(
        (pl.col("event_type") == DISPUTE_CREATED) & (pl.col("dispute_reason") == "fraudulent")
    )
    disputed = (
        payments.select("event_id", "charge_id", _T)
        .join(disputes.select("charge_id", pl.col(_T).alias("_disputed_at")), on="charge_id")
        .filter(
            (pl.col("_disputed_at") > pl.col(_T))
            & (pl.col("_disputed_at") <= pl.col(_T) + FRAUD_HORIZON)
        )
        .select("event_id")
        .unique()
    )
    flag = pl.col("event_id").is_in(disputed["event_id"].implode())
    return payments.select("event_id", label=flag.cast(pl.Int8))


def retry_labels(silver: pl.DataFrame, as_of: datetime | None = None) -> pl.DataFrame:
    """One row per settled ``payment.failed`` that was retried: ``event_id``, ``delay_hours`` until
    the next attempt of the same customer and order, ``label`` = 1 when that attempt succeeded.
    Failures never retried within ``RETRY_HORIZON`` carry no label (no delay was tried)."""
    attempts = (
        silver.filter(pl.col("event_type").is_in([SUCCEEDED, FAILED]))
        .with_columns(
            _order=pl.coalesce(
                pl.col("metadata").str.json_path_match("$.order_id"), pl.col("payment_intent_id")
            )
        )
        .filter(pl.col("customer_id").is_not_null() & pl.col("_order").is_not_null())
        .sort(_T)
    )
    failures = attempts.filter(
        (pl.col("event_type") == FAILED) & _settled(silver, RETRY_HORIZON, as_of)
    )
    following = attempts.select(
        "customer_id",
        "_order",
        pl.col(_T).alias("_next_at"),
        _T,
        pl.col("event_type").alias("_next_type"),
    )
    joined = failures.select("event_id", "customer_id", "_order", _T).join_asof(
        following,
        on=_T,
        by=["customer_id", "_order"],
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    delay = (pl.col("_next_at") - pl.col(_T)).dt.total_seconds() / 3600
    return joined.filter(
        pl.col("_next_at").is_not_null() & (delay <= RETRY_HORIZON.days * 24)
    ).select("event_id", delay_hours=delay, label=(pl.col("_next_type") == SUCCEEDED).cast(pl.Int8))


def churn_labels(silver: pl.DataFrame, as_of: datetime | None = None) -> pl.DataFrame:
    """One row per settled payment attempt of a known customer: ``event_id``, ``label`` = 1 when
    the customer had no successful payment in the following ``CHURN_HORIZON``."""
    attempts = silver.filter(
        pl.col("event_type").is_in([SUCCEEDED, FAILED]) & pl.col("customer_id").is_not_null()
    ).sort(_T)
    settled = attempts.filter(_settled(silver, CHURN_HORIZON, as_of))
    successes = attempts.filter(pl.col("event_type") == SUCCEEDED).select(
        "customer_id", _T, pl.col(_T).alias("_next_success")
    )
    joined = settled.select("event_id", "customer_id", _T).join_asof(
        successes,
        on=_T,
        by="customer_id",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    churned = pl.col("_next_success").is_null() | (
        pl.col("_next_success") > pl.col(_T) + CHURN_HORIZON
    )
    return joined.select("event_id", label=churned.cast(pl.Int8))
