"""Small, valid rows of the warehouse tables, typed by each table's spec."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from warehouse.tables import (
    GOLD_MERCHANT_DAILY,
    SILVER_PAYMENT_EVENTS,
    SILVER_QUARANTINE,
    TableSpec,
)

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def plain_type(arrow_type: pa.DataType) -> pa.DataType:
    """``arrow_type`` with large and view strings and lists as plain ones (Polars and pyiceberg
    read strings and lists as large; the table definitions say plain)."""
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pa.list_(plain_type(arrow_type.value_type))
    return arrow_type


def _typed(columns: dict[str, list], spec: TableSpec) -> pa.Table:
    """``columns`` with the types of ``spec``'s fields (columns left out are optional ones)."""
    return pa.table(columns, schema=pa.schema([spec.arrow_schema.field(n) for n in columns]))


def make_silver_events(ids: range, day: datetime = DAY, merchant: str = "acct_1") -> pa.Table:
    """Silver payment events ``stripe:evt_<i>`` for ``i`` in ``ids``, created on ``day``."""
    n = len(ids)
    at = [day + timedelta(seconds=i % 86_400) for i in ids]
    columns = {
        "event_id": [f"stripe:evt_{i}" for i in ids],
        "provider": ["stripe"] * n,
        "provider_event_id": [f"evt_{i}" for i in ids],
        "event_type": ["payment.succeeded"] * n,
        "provider_event_type": ["payment_intent.succeeded"] * n,
        "object_id": [f"pi_{i}" for i in ids],
        "merchant_id": [merchant] * n,
        "amount_minor": [100 * i for i in ids],
        "currency": ["USD"] * n,
        "amount": [Decimal(i) for i in ids],
        "provider_created_at": at,
        "received_at": at,
        "processed_at": at,
        "delivery_id": [f"webhooks.stripe.payment_intent:0:{i}" for i in ids],
        "schema_version": [2] * n,
    }
    return _typed(columns, SILVER_PAYMENT_EVENTS)


def make_quarantine_rows(ids: range, day: datetime = DAY) -> pa.Table:
    """Silver quarantine rows ``silver:<i>`` (INVALID_JSON), quarantined on ``day``."""
    n = len(ids)
    columns = {
        "quarantine_id": [f"silver:webhooks.dlq:0:{i}" for i in ids],
        "delivery_id": [f"webhooks.dlq:0:{i}" for i in ids],
        "layer": ["silver"] * n,
        "error_code": ["INVALID_JSON"] * n,
        "payload": ["{not json"] * n,
        "topic": ["webhooks.dlq"] * n,
        "partition": [0] * n,
        "offset": list(ids),
        "received_at": [day] * n,
        "quarantined_at": [day] * n,
    }
    return _typed(columns, SILVER_QUARANTINE)


def make_merchant_daily(day: date, volume_minor: int) -> pa.Table:
    """gold.merchant_daily rows of ``acct_1`` and ``acct_2`` for ``day`` in USD."""
    columns = {
        "merchant_id": ["acct_1", "acct_2"],
        "day": [day, day],
        "currency": ["USD", "USD"],
        "volume_minor": [volume_minor] * 2,
        "volume": [Decimal(volume_minor) / 100] * 2,
        "payments_succeeded": [1, 1],
        "payments_failed": [0, 0],
        "payments_canceled": [0, 0],
        "refunds": [0, 0],
        "disputes": [0, 0],
        "updated_at": [DAY, DAY],
        "refund_volume_minor": [0, 0],
        "refund_volume": [Decimal(0)] * 2,
        "dispute_volume_minor": [0, 0],
        "dispute_volume": [Decimal(0)] * 2,
    }
    return _typed(columns, GOLD_MERCHANT_DAILY)
