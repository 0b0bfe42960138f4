"""Polars schemas of the tables the transforms read and write.

Kept here on purpose (transforms import nothing of the project); a test asserts that the names
and types equal ``warehouse.tables``, so the two cannot drift.
"""

from __future__ import annotations

import polars as pl

TS = pl.Datetime("us", "UTC")
#: Major units; must equal ``warehouse.tables.AMOUNT`` (decimal128(20, 3)).
AMOUNT_PRECISION, AMOUNT_SCALE = 20, 3
AMOUNT = pl.Decimal(AMOUNT_PRECISION, AMOUNT_SCALE)
S, I32, I64, F64 = pl.String, pl.Int32, pl.Int64, pl.Float64

BRONZE_WEBHOOK_EVENTS = pl.Schema(
    {
        "delivery_id": S,
        "provider": S,
        "event_id": S,
        "event_type": S,
        "topic": S,
        "partition": I32,
        "offset": I64,
        "message_key": S,
        "payload": S,
        "dlq_reason": S,
        "request_id": S,
        "received_at": TS,
        "ingested_at": TS,
    }
)

SILVER_PAYMENT_EVENTS = pl.Schema(
    {
        "event_id": S,
        "provider": S,
        "provider_event_id": S,
        "event_type": S,
        "provider_event_type": S,
        "object_id": S,
        "payment_intent_id": S,
        "charge_id": S,
        "merchant_id": S,
        "customer_id": S,
        "amount_minor": I64,
        "currency": S,
        "amount": AMOUNT,
        "payment_method_type": S,
        "card_brand": S,
        "card_last_four": S,
        "card_country": S,
        "customer_country": S,
        "status": S,
        "failure_code": S,
        "decline_code": S,
        "failure_message": S,
        "dispute_reason": S,
        "metadata": S,
        "provider_created_at": TS,
        "received_at": TS,
        "processed_at": TS,
        "delivery_id": S,
        "schema_version": I32,
    }
)

SILVER_QUARANTINE = pl.Schema(
    {
        "quarantine_id": S,
        "delivery_id": S,
        "layer": S,
        "error_code": S,
        "error_detail": S,
        "event_id": S,
        "event_type": S,
        "payload": S,
        "topic": S,
        "partition": I32,
        "offset": I64,
        "received_at": TS,
        "quarantined_at": TS,
        "released_at": TS,
        "released_by": S,
    }
)

GOLD_PAYMENT_SCORES = pl.Schema(
    {
        "event_id": S,
        "event_type": S,
        "merchant_id": S,
        "customer_id": S,
        "provider_created_at": TS,
        "fraud_score": F64,
        "fraud_model": S,
        "fraud_model_version": S,
        "retry_delay_hours": I32,
        "retry_success_probability": F64,
        "retry_model": S,
        "retry_model_version": S,
        "churn_score": F64,
        "churn_model": S,
        "churn_model_version": S,
        "scored_at": TS,
    }
)

GOLD_MERCHANT_DAILY = pl.Schema(
    {
        "merchant_id": S,
        "day": pl.Date,
        "currency": S,
        "volume_minor": I64,
        "volume": AMOUNT,
        "payments_succeeded": I64,
        "payments_failed": I64,
        "payments_canceled": I64,
        "refunds": I64,
        "disputes": I64,
        "refund_rate": F64,
        "dispute_rate": F64,
        "mean_fraud_score": F64,
        "updated_at": TS,
    }
)

#: Table name (``namespace.table``) -> schema, for tests and callers that go by name.
BY_TABLE: dict[str, pl.Schema] = {
    "bronze.webhook_events": BRONZE_WEBHOOK_EVENTS,
    "silver.payment_events": SILVER_PAYMENT_EVENTS,
    "silver.quarantine": SILVER_QUARANTINE,
    "gold.payment_scores": GOLD_PAYMENT_SCORES,
    "gold.merchant_daily": GOLD_MERCHANT_DAILY,
}


def conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns, in order and cast to its types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
