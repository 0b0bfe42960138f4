"""Row contracts: one Pandera (polars backend) schema per table, named like the table.

``bronze.webhook_events`` ↔ ``BronzeWebhookEvent``, ``silver.payment_events`` ↔
``SilverPaymentEvent``, ``silver.quarantine`` ↔ ``SilverQuarantine``, ``gold.payment_scores`` ↔
``GoldPaymentScore``, ``gold.merchant_daily`` ↔ ``GoldMerchantDaily``, ``gold.reconciliation`` ↔
``GoldReconciliation``.

Columns, order, types and nullability come from ``transforms.schemas`` (the one definition of
each table); only the checks on values are written here.

Validate collected ``DataFrame``s: on a ``LazyFrame`` Pandera checks the schema only, not the
values. Division of labour with ``transforms``: the quarantine codes (``settings.names``) come
from vectorized rules in ``transforms.rules``; ``check_rows`` is the last gate before silver —
rows that pass those rules but break ``SilverPaymentEvent`` are quarantined as ``ROW_CONTRACT``
(pass it as ``to_silver(..., row_contract=check_rows)``), so no row reaches silver without this
contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandera.polars as pa
import polars as pl
from pandera.polars import Check

from settings.names import (
    ALL_TOPICS,
    DLQ_REASONS,
    ERROR_CODES,
    LISTINGS,
    PROVIDER_STRIPE,
    SOURCE_RECONCILIATION,
)
from transforms import schemas
from transforms.events import SCHEMA_VERSION
from transforms.money import CURRENCIES
from transforms.normalize import EVENT_TYPES, NULL_STRINGS, UNIFIED_TYPES
from transforms.schemas import TableSchema

#: What a column is checked for beyond its type and nullability (both from ``transforms.schemas``).
Checks = Mapping[str, Check | Sequence[Check]]


def contract(
    name: str,
    table: TableSchema,
    checks: Checks,
    *,
    unique: Sequence[str] = (),
    unique_together: Sequence[str] = (),
) -> pa.DataFrameSchema:
    """``table``'s row contract: exactly its columns, in order, with their Polars types and
    nullability, plus ``checks`` per column; ``unique`` columns hold no duplicate, nor do the
    ``unique_together`` columns taken together."""
    unknown = ({*checks, *unique, *unique_together}) - set(table.column_names)
    if unknown:
        raise KeyError(f"{name}: checks name columns {sorted(unknown)} not in {table.name}")
    columns = {
        column.name: pa.Column(
            dtype,
            checks=_as_list(checks.get(column.name, ())),
            nullable=column.nullable,
            unique=column.name in unique,
            description=column.doc,
        )
        for column, dtype in zip(table.columns, table.polars.values(), strict=True)
    }
    return pa.DataFrameSchema(
        columns,
        strict=True,  # exactly the table's columns …
        ordered=True,  # … in the table's order
        unique=list(unique_together) or None,
        name=name,
        description=f"{table.identifier_str}: {table.grain}",
    )


def _as_list(checks: Check | Sequence[Check]) -> list[Check]:
    return [checks] if isinstance(checks, Check) else list(checks)


def _text(*more: Check) -> list[Check]:
    """Text that never holds a null string ("null", "None", ""): those are nulls in silver."""
    return [Check.notin(list(NULL_STRINGS)), *more]


_COUNTRY = Check.str_matches(r"^[A-Z]{2}$")
_NON_NEGATIVE = Check.ge(0)
_PROBABILITY = [Check.ge(0.0), Check.le(1.0)]


BronzeWebhookEvent = contract(
    "BronzeWebhookEvent",
    schemas.BRONZE_WEBHOOK_EVENTS,
    {
        "provider": Check.isin([PROVIDER_STRIPE]),
        "topic": Check.isin(list(ALL_TOPICS)),
        "partition": _NON_NEGATIVE,
        "offset": _NON_NEGATIVE,
        "dlq_reason": Check.isin(list(DLQ_REASONS)),
        "source": Check.isin([SOURCE_RECONCILIATION]),
    },
    unique=("delivery_id",),
)

SilverPaymentEvent = contract(
    "SilverPaymentEvent",
    schemas.SILVER_PAYMENT_EVENTS,
    {
        "event_id": Check.str_matches(r"^[a-z]+:evt_\w+$"),
        "provider": Check.isin([PROVIDER_STRIPE]),
        "provider_event_id": Check.str_matches(r"^evt_\w+$"),
        "event_type": Check.isin(list(UNIFIED_TYPES)),
        "provider_event_type": Check.isin(list(EVENT_TYPES)),
        "object_id": _text(),
        "payment_intent_id": _text(),
        "charge_id": _text(),
        "merchant_id": _text(),
        "customer_id": _text(),
        "amount_minor": _NON_NEGATIVE,
        "currency": Check.isin(list(CURRENCIES)),
        "amount": _NON_NEGATIVE,
        "object_amount_minor": _NON_NEGATIVE,
        "payment_method_type": _text(),
        "card_brand": _text(),
        "card_last_four": _text(Check.str_matches(r"^[0-9]{4}$")),
        "card_country": _text(_COUNTRY),
        "customer_country": _text(_COUNTRY),
        "status": _text(),
        "failure_code": _text(),
        "decline_code": _text(),
        "failure_message": _text(),
        "dispute_reason": _text(),
        "metadata": _text(Check.str_startswith("{")),
        "api_version": _text(),
        "schema_version": Check.eq(SCHEMA_VERSION),
    },
    unique=("event_id",),
)

SilverQuarantine = contract(
    "SilverQuarantine",
    schemas.SILVER_QUARANTINE,
    {
        "quarantine_id": Check.str_matches(r"^(silver|gold):"),
        "layer": Check.isin(["silver", "gold"]),
        "error_code": Check.isin(list(ERROR_CODES)),
        "partition": _NON_NEGATIVE,
        "offset": _NON_NEGATIVE,
    },
    unique=("quarantine_id",),
)

GoldPaymentScore = contract(
    "GoldPaymentScore",
    schemas.GOLD_PAYMENT_SCORES,
    {
        "event_type": Check.isin(list(UNIFIED_TYPES)),
        "fraud_score": _PROBABILITY,
        "retry_delay_hours": _NON_NEGATIVE,
        "retry_success_probability": _PROBABILITY,
        "churn_score": _PROBABILITY,
    },
    unique=("event_id",),
)

GoldMerchantDaily = contract(
    "GoldMerchantDaily",
    schemas.GOLD_MERCHANT_DAILY,
    {
        "currency": Check.str_matches(r"^[A-Z]{3}$"),
        "volume_minor": _NON_NEGATIVE,
        "volume": _NON_NEGATIVE,
        "payments_succeeded": _NON_NEGATIVE,
        "payments_failed": _NON_NEGATIVE,
        "payments_canceled": _NON_NEGATIVE,
        "refunds": _NON_NEGATIVE,
        "disputes": _NON_NEGATIVE,
        "refund_volume_minor": _NON_NEGATIVE,
        "refund_volume": _NON_NEGATIVE,
        "dispute_volume_minor": _NON_NEGATIVE,
        "dispute_volume": _NON_NEGATIVE,
        "refund_rate": Check.ge(0.0),
        "dispute_rate": Check.ge(0.0),
        "mean_fraud_score": _PROBABILITY,
    },
    unique_together=("merchant_id", "day", "currency"),
)

GoldReconciliation = contract(
    "GoldReconciliation",
    schemas.GOLD_RECONCILIATION,
    {
        "provider": Check.isin([PROVIDER_STRIPE]),
        "listing": Check.isin(list(LISTINGS)),
        "provider_events": _NON_NEGATIVE,
        "in_bronze": _NON_NEGATIVE,
        "recovered_earlier": _NON_NEGATIVE,
        "recovered": _NON_NEGATIVE,
        "still_missing": _NON_NEGATIVE,
    },
    unique_together=("run_id", "provider", "day"),
)

#: Table name -> its row contract.
CONTRACTS: dict[str, pa.DataFrameSchema] = {
    table.identifier_str: model
    for table, model in (
        (schemas.BRONZE_WEBHOOK_EVENTS, BronzeWebhookEvent),
        (schemas.SILVER_PAYMENT_EVENTS, SilverPaymentEvent),
        (schemas.SILVER_QUARANTINE, SilverQuarantine),
        (schemas.GOLD_PAYMENT_SCORES, GoldPaymentScore),
        (schemas.GOLD_MERCHANT_DAILY, GoldMerchantDaily),
        (schemas.GOLD_RECONCILIATION, GoldReconciliation),
    )
}


class ContractError(ValueError):
    """The frame's schema (columns, types) breaks the contract: a code bug, not bad data."""


def row_failures(frame: pl.DataFrame, model: pa.DataFrameSchema) -> pl.DataFrame:
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
        raise ContractError(f"{model.name}: {schema_level.to_dicts()}")
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
