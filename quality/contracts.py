"""Row contracts: one Pandera (polars backend) model per table, named like the table.

``bronze.webhook_events`` ↔ ``BronzeWebhookEvent``, ``silver.payment_events`` ↔
``SilverPaymentEvent``, ``silver.quarantine`` ↔ ``SilverQuarantine``, ``gold.payment_scores`` ↔
``GoldPaymentScore``, ``gold.merchant_daily`` ↔ ``GoldMerchantDaily``.

Validate collected ``DataFrame``s: on a ``LazyFrame`` Pandera checks the schema only, not the
values. Division of labour with ``transforms``: the quarantine codes (``docs/architecture.md``)
come from vectorized rules in ``transforms.rules``; ``check_rows`` is the last gate before silver
— rows that pass those rules but break ``SilverPaymentEvent`` are quarantined as ``ROW_CONTRACT``
(pass it as ``to_silver(..., row_contract=check_rows)``), so no row reaches silver without this
contract.
"""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl

from settings.names import ALL_TOPICS, DLQ_REASONS, ERROR_CODES, PROVIDER_STRIPE
from transforms.currency import EXPONENTS
from transforms.normalize import EVENT_TYPES, NULL_STRINGS, UNIFIED_TYPES

Timestamp = Annotated[pl.Datetime, "us", "UTC"]
Amount = Annotated[pl.Decimal, 20, 3]

COUNTRY = r"^[A-Z]{2}$"


def _text(**checks: object) -> object:
    """A nullable text field that never holds a null string ("null", "None", "")."""
    return pa.Field(nullable=True, notin=list(NULL_STRINGS), **checks)


class _Contract(pa.DataFrameModel):
    class Config:
        strict = True  # exactly the table's columns …
        ordered = True  # … in the table's order


class BronzeWebhookEvent(_Contract):
    """``bronze.webhook_events``: one row per delivery (broker message)."""

    delivery_id: str = pa.Field(unique=True)
    provider: str = pa.Field(isin=[PROVIDER_STRIPE])
    event_id: str = pa.Field(nullable=True)
    event_type: str = pa.Field(nullable=True)
    topic: str = pa.Field(isin=list(ALL_TOPICS))
    partition: pl.Int32 = pa.Field(ge=0)
    offset: pl.Int64 = pa.Field(ge=0)
    message_key: str = pa.Field(nullable=True)
    payload: str
    dlq_reason: str = pa.Field(nullable=True, isin=list(DLQ_REASONS))
    request_id: str = pa.Field(nullable=True)
    received_at: Timestamp
    ingested_at: Timestamp


class SilverPaymentEvent(_Contract):
    """``silver.payment_events``: one row per provider event id."""

    event_id: str = pa.Field(unique=True, str_matches=r"^[a-z]+:evt_\w+$")
    provider: str = pa.Field(isin=[PROVIDER_STRIPE])
    provider_event_id: str = pa.Field(str_matches=r"^evt_\w+$")
    event_type: str = pa.Field(isin=list(UNIFIED_TYPES))
    provider_event_type: str = pa.Field(isin=list(EVENT_TYPES))
    object_id: str = pa.Field(notin=list(NULL_STRINGS))
    payment_intent_id: str = _text()
    charge_id: str = _text()
    merchant_id: str = _text()
    customer_id: str = _text()
    amount_minor: pl.Int64 = pa.Field(ge=0)
    currency: str = pa.Field(isin=list(EXPONENTS))
    amount: Amount = pa.Field(ge=0)
    payment_method_type: str = _text()
    card_brand: str = _text()
    card_last_four: str = _text(str_matches=r"^[0-9]{4}$")
    card_country: str = _text(str_matches=COUNTRY)
    customer_country: str = _text(str_matches=COUNTRY)
    status: str = _text()
    failure_code: str = _text()
    decline_code: str = _text()
    failure_message: str = _text()
    dispute_reason: str = _text()
    metadata: str = _text(str_startswith="{")
    provider_created_at: Timestamp
    received_at: Timestamp
    processed_at: Timestamp
    delivery_id: str
    schema_version: pl.Int32 = pa.Field(eq=1)


class SilverQuarantine(_Contract):
    """``silver.quarantine``: one row per rejected delivery and layer."""

    quarantine_id: str = pa.Field(unique=True, str_matches=r"^(silver|gold):")
    delivery_id: str
    layer: str = pa.Field(isin=["silver", "gold"])
    error_code: str = pa.Field(isin=list(ERROR_CODES))
    error_detail: str = pa.Field(nullable=True)
    event_id: str = pa.Field(nullable=True)
    event_type: str = pa.Field(nullable=True)
    payload: str
    topic: str
    partition: pl.Int32 = pa.Field(ge=0)
    offset: pl.Int64 = pa.Field(ge=0)
    received_at: Timestamp
    quarantined_at: Timestamp
    released_at: Timestamp = pa.Field(nullable=True)
    released_by: str = pa.Field(nullable=True)


def _probability() -> object:
    return pa.Field(nullable=True, ge=0.0, le=1.0)


class GoldPaymentScore(_Contract):
    """``gold.payment_scores``: one row per scored silver event."""

    event_id: str = pa.Field(unique=True)
    event_type: str = pa.Field(isin=list(UNIFIED_TYPES))
    merchant_id: str = pa.Field(nullable=True)
    customer_id: str = pa.Field(nullable=True)
    provider_created_at: Timestamp
    fraud_score: pl.Float64 = _probability()
    fraud_model: str = pa.Field(nullable=True)
    fraud_model_version: str = pa.Field(nullable=True)
    retry_delay_hours: pl.Int32 = pa.Field(nullable=True, ge=0)
    retry_success_probability: pl.Float64 = _probability()
    retry_model: str = pa.Field(nullable=True)
    retry_model_version: str = pa.Field(nullable=True)
    churn_score: pl.Float64 = _probability()
    churn_model: str = pa.Field(nullable=True)
    churn_model_version: str = pa.Field(nullable=True)
    scored_at: Timestamp


class GoldMerchantDaily(_Contract):
    """``gold.merchant_daily``: one row per merchant, UTC day and currency."""

    merchant_id: str
    day: pl.Date
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$")
    volume_minor: pl.Int64 = pa.Field(ge=0)
    volume: Amount = pa.Field(ge=0)
    payments_succeeded: pl.Int64 = pa.Field(ge=0)
    payments_failed: pl.Int64 = pa.Field(ge=0)
    payments_canceled: pl.Int64 = pa.Field(ge=0)
    refunds: pl.Int64 = pa.Field(ge=0)
    disputes: pl.Int64 = pa.Field(ge=0)
    refund_rate: pl.Float64 = pa.Field(nullable=True, ge=0.0)
    dispute_rate: pl.Float64 = pa.Field(nullable=True, ge=0.0)
    mean_fraud_score: pl.Float64 = _probability()
    updated_at: Timestamp

    class Config:
        unique = ["merchant_id", "day", "currency"]


#: Table name -> its row contract.
CONTRACTS: dict[str, type[_Contract]] = {
    "bronze.webhook_events": BronzeWebhookEvent,
    "silver.payment_events": SilverPaymentEvent,
    "silver.quarantine": SilverQuarantine,
    "gold.payment_scores": GoldPaymentScore,
    "gold.merchant_daily": GoldMerchantDaily,
}


class ContractError(ValueError):
    """The frame's schema (columns, types) breaks the contract: a code bug, not bad data."""


def row_failures(frame: pl.DataFrame, model: type[_Contract]) -> pl.DataFrame:
    """Row-level failures of ``model`` on ``frame``: ``index`` (row number) and ``error_detail``
    ("column check: value; …"), one row per failing row. Raises ``ContractError`` on
    schema-level failures (missing or extra columns, wrong types)."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pl.DataFrame(schema={"index": pl.UInt32, "error_detail": pl.String})
    schema_level = cases.filter(pl.col("index").is_null())
    if schema_level.height:
        raise ContractError(f"{model.__name__}: {schema_level.to_dicts()}")
    text = pl.format("{} {}: {}", "column", "check", "failure_case")
    return (
        cases.group_by(pl.col("index").cast(pl.UInt32), maintain_order=True)
        .agg(text.str.join("; ").alias("error_detail"))
        .sort("index")
    )


def check_rows(events: pl.DataFrame) -> pl.DataFrame:
    """The ``SilverPaymentEvent`` rows of ``events`` that break it: ``delivery_id`` and
    ``error_detail``. The ``row_contract`` of ``transforms.events.to_silver``."""
    failures = row_failures(events, SilverPaymentEvent)
    return (
        events.with_row_index("index")
        .join(failures, on="index", how="inner")
        .select("delivery_id", "error_detail")
    )
