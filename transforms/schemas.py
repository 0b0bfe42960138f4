"""The columns of every lakehouse table, written once: name, Arrow type, nullability and doc.

Every other view of a table is derived from these definitions, never restated:

- its Polars schema (``TableSchema.polars``), which the transforms conform their output to;
- its Iceberg table (``warehouse.tables`` adds only the layout: partitioning, sort order,
  identifier fields, properties);
- its Pandera row contract (``quality.contracts`` adds only the per-column checks);
- the bronze rows the broker reader builds (``ingest.consumer`` conforms to ``arrow``);
- the score rows of ``ml.scoring``.

Timestamps are UTC (``timestamptz``, microseconds). Money carries its unit in the name
(``amount_minor`` is the provider's integer in the smallest unit; ``amount`` is major units).
Changing a column here changes the Iceberg table: ``warehouse.catalog`` adds new columns as
optional and never drops one; a decimal's new scale is a migration (``warehouse.migrate``, listed
in the table's spec). Keep existing names and nullability.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import polars as pl
import pyarrow as pa

ARROW_TS = pa.timestamp("us", tz="UTC")
#: Major units. Four decimals hold every ISO 4217 exponent exactly (CLF and UYW have four); 24
#: digits hold any int64 of minor units of a zero-decimal currency. Iceberg cannot change a
#: decimal's scale in place: ``warehouse.migrate`` rewrites tables made with decimal(20, 3).
ARROW_AMOUNT = pa.decimal128(24, 4)


class Column(NamedTuple):
    """One column of a table."""

    name: str
    type: pa.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class TableSchema:
    """A table's name, grain and columns; its Arrow and Polars schemas derive from them."""

    namespace: str
    name: str
    grain: str
    columns: tuple[Column, ...]

    @property
    def identifier_str(self) -> str:
        """``namespace.name``, as the catalog and DuckDB name the table."""
        return f"{self.namespace}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @cached_property
    def arrow(self) -> pa.Schema:
        """The Arrow schema, each field's doc in its metadata (Iceberg keeps it as the doc)."""
        return pa.schema(
            [
                pa.field(c.name, c.type, nullable=c.nullable, metadata={"doc": c.doc})
                for c in self.columns
            ]
        )

    @cached_property
    def polars(self) -> pl.Schema:
        """The Polars schema: the Arrow types as Polars reads them."""
        return pl.Schema(self.arrow)


def _table(namespace: str, name: str, grain: str, *columns: tuple) -> TableSchema:
    return TableSchema(namespace, name, grain, tuple(Column(*c) for c in columns))


BRONZE_WEBHOOK_EVENTS = _table(
    "bronze",
    "webhook_events",
    "one row per delivery (broker message): topic, partition and offset are unique",
    ("delivery_id", pa.string(), False, "topic:partition:offset of the broker message"),
    ("provider", pa.string(), False, "payment provider that sent the webhook (stripe)"),
    ("event_id", pa.string(), True, "provider event id from the message header (evt_…)"),
    ("event_type", pa.string(), True, "provider event type from the header"),
    ("topic", pa.string(), False, "topic the delivery was read from"),
    ("partition", pa.int32(), False, "topic partition"),
    ("offset", pa.int64(), False, "offset within the partition"),
    ("message_key", pa.string(), True, "partition key: merchant, else event id"),
    ("payload", pa.string(), False, "request body exactly as received (UTF-8 text)"),
    ("dlq_reason", pa.string(), True, "why the receiver could not route it (webhooks.dlq)"),
    ("request_id", pa.string(), True, "receiver request id, for tracing"),
    ("received_at", ARROW_TS, False, "when the receiver accepted the webhook (UTC)"),
    ("ingested_at", ARROW_TS, False, "when the bronze loader committed it (UTC)"),
    ("source", pa.string(), True, "null for a webhook; reconciliation: recovered from the API"),
)

SILVER_PAYMENT_EVENTS = _table(
    "silver",
    "payment_events",
    "one row per provider event id (duplicates dropped, first delivery wins)",
    ("event_id", pa.string(), False, "stripe:evt_… — provider-qualified event id"),
    ("provider", pa.string(), False, "payment provider (stripe)"),
    ("provider_event_id", pa.string(), False, "the provider's own event id (evt_…)"),
    ("event_type", pa.string(), False, "normalized type: payment.succeeded, refund.created, …"),
    ("provider_event_type", pa.string(), False, "the provider's type (payment_intent.…)"),
    ("object_id", pa.string(), False, "id of data.object (pi_…, ch_…, re_…, dp_…)"),
    ("payment_intent_id", pa.string(), True, "the payment intent the event belongs to"),
    ("charge_id", pa.string(), True, "the charge the event belongs to"),
    ("merchant_id", pa.string(), True, "merchant: Stripe account, else metadata.merchant_id"),
    ("customer_id", pa.string(), True, "customer id (cus_…)"),
    (
        "amount_minor",
        pa.int64(),
        False,
        "money this event moved, in the currency's smallest unit as the provider sends it: a "
        "succeeded PaymentIntent's amount_received, a capture's amount_captured, a refund's "
        "amount (charge.refunded: the charge's amount_refunded), a dispute's amount, else the "
        "object's amount",
    ),
    ("currency", pa.string(), False, "ISO 4217 code, upper case"),
    (
        "amount",
        ARROW_AMOUNT,
        False,
        "amount_minor in major units, by the provider's minor-unit rule (ISO 4217 plus its "
        "documented exceptions: Stripe keeps ISK two-decimal, MGA zero-decimal)",
    ),
    (
        "object_amount_minor",
        pa.int64(),
        True,
        "data.object.amount as sent (smallest unit): the charge or PaymentIntent amount beside "
        "the money moved, e.g. 10,000 for a partial refund of 3,000 (null in rows before v2)",
    ),
    ("payment_method_type", pa.string(), True, "card, sepa_debit, …"),
    ("card_brand", pa.string(), True, "visa, mastercard, …"),
    ("card_last_four", pa.string(), True, "last four digits of the card"),
    ("card_country", pa.string(), True, "ISO 3166 country of the card issuer"),
    ("customer_country", pa.string(), True, "ISO 3166 country of the billing address"),
    ("status", pa.string(), True, "object status (succeeded, requires_payment_method, …)"),
    ("failure_code", pa.string(), True, "failure or decline code (card_declined, …)"),
    ("decline_code", pa.string(), True, "issuer decline code (insufficient_funds, …)"),
    ("failure_message", pa.string(), True, "human readable failure message"),
    ("dispute_reason", pa.string(), True, "dispute reason (fraudulent, …) for dispute events"),
    ("metadata", pa.string(), True, "object metadata as JSON text"),
    (
        "livemode",
        pa.bool_(),
        True,
        "the provider's livemode: false for test-mode events, which gold leaves out by default",
    ),
    ("api_version", pa.string(), True, "API version the provider rendered the event with"),
    ("provider_created_at", ARROW_TS, False, "when the provider created the event (UTC)"),
    ("received_at", ARROW_TS, False, "when the receiver accepted the delivery (UTC)"),
    ("processed_at", ARROW_TS, False, "when silver processed it (UTC)"),
    ("delivery_id", pa.string(), False, "the bronze delivery this row came from"),
    (
        "schema_version",
        pa.int32(),
        False,
        "version of the unified schema the row was written with (2: money moved, object amount, "
        "livemode, api_version, four-decimal amount)",
    ),
)

SILVER_QUARANTINE = _table(
    "silver",
    "quarantine",
    "one row per rejected delivery and layer",
    ("quarantine_id", pa.string(), False, "layer:delivery_id"),
    ("delivery_id", pa.string(), False, "the bronze delivery (topic:partition:offset)"),
    ("layer", pa.string(), False, "layer that rejected it: silver or gold"),
    ("error_code", pa.string(), False, "INVALID_JSON, MISSING_EVENT_ID, INVALID_AMOUNT, …"),
    ("error_detail", pa.string(), True, "what exactly was wrong"),
    ("event_id", pa.string(), True, "provider event id, when it could be read"),
    ("event_type", pa.string(), True, "provider event type, when it could be read"),
    ("payload", pa.string(), False, "the raw payload"),
    ("topic", pa.string(), False, "source topic"),
    ("partition", pa.int32(), False, "source partition"),
    ("offset", pa.int64(), False, "source offset"),
    ("received_at", ARROW_TS, False, "when the receiver accepted it (UTC)"),
    ("quarantined_at", ARROW_TS, False, "when it was quarantined (UTC)"),
    ("released_at", ARROW_TS, True, "when an operator released it for replay (UTC)"),
    ("released_by", pa.string(), True, "who released it, and why"),
)

GOLD_PAYMENT_SCORES = _table(
    "gold",
    "payment_scores",
    "one row per scored silver event",
    ("event_id", pa.string(), False, "silver event id"),
    ("event_type", pa.string(), False, "normalized event type"),
    ("merchant_id", pa.string(), True, "merchant"),
    ("customer_id", pa.string(), True, "customer"),
    ("provider_created_at", ARROW_TS, False, "event time (UTC)"),
    ("fraud_score", pa.float64(), True, "probability of a later fraudulent dispute"),
    ("fraud_model", pa.string(), True, "registered model name"),
    ("fraud_model_version", pa.string(), True, "registered model version"),
    ("retry_delay_hours", pa.int32(), True, "recommended hours to wait before retrying"),
    ("retry_success_probability", pa.float64(), True, "success probability at that delay"),
    ("retry_model", pa.string(), True, "registered model name"),
    ("retry_model_version", pa.string(), True, "registered model version"),
    ("churn_score", pa.float64(), True, "probability of no successful payment in 30 days"),
    ("churn_model", pa.string(), True, "registered model name"),
    ("churn_model_version", pa.string(), True, "registered model version"),
    ("scored_at", ARROW_TS, False, "when it was scored (UTC)"),
)

GOLD_MERCHANT_DAILY = _table(
    "gold",
    "merchant_daily",
    "one row per merchant, day (UTC, of provider_created_at) and currency",
    ("merchant_id", pa.string(), False, "merchant"),
    ("day", pa.date32(), False, "UTC day of the events"),
    ("currency", pa.string(), False, "ISO 4217 code"),
    (
        "volume_minor",
        pa.int64(),
        False,
        "succeeded payment volume (amount received), smallest unit",
    ),
    ("volume", ARROW_AMOUNT, False, "succeeded payment volume (amount received), major units"),
    ("payments_succeeded", pa.int64(), False, "payment.succeeded events"),
    ("payments_failed", pa.int64(), False, "payment.failed events"),
    ("payments_canceled", pa.int64(), False, "payment.canceled events"),
    ("refunds", pa.int64(), False, "refund.created events"),
    ("disputes", pa.int64(), False, "dispute.created events"),
    ("refund_rate", pa.float64(), True, "refund volume / succeeded volume (amounts, same day)"),
    ("dispute_rate", pa.float64(), True, "dispute volume / succeeded volume (amounts, same day)"),
    ("mean_fraud_score", pa.float64(), True, "mean fraud score of the day's scored events"),
    ("updated_at", ARROW_TS, False, "when this partition was rebuilt (UTC)"),
    ("refund_volume_minor", pa.int64(), False, "refunded amount of refund.created, smallest unit"),
    ("refund_volume", ARROW_AMOUNT, False, "refunded amount of refund.created, major units"),
    (
        "dispute_volume_minor",
        pa.int64(),
        False,
        "disputed amount of dispute.created, smallest unit",
    ),
    ("dispute_volume", ARROW_AMOUNT, False, "disputed amount of dispute.created, major units"),
)

GOLD_RECONCILIATION = _table(
    "gold",
    "reconciliation",
    "one row per provider, UTC day of event creation and reconciliation run",
    ("run_id", pa.string(), False, "the reconciliation run (Prefect flow run id, else a UUID)"),
    ("provider", pa.string(), False, "payment provider whose Events API was listed (stripe)"),
    ("day", pa.date32(), False, "UTC day the provider created the events"),
    ("listing", pa.string(), False, "events listed: all, or delivery_failed (failed webhooks)"),
    ("provider_events", pa.int64(), False, "events the provider listed for the day and window"),
    ("in_bronze", pa.int64(), False, "of those, events bronze held (any delivery, any source)"),
    ("recovered_earlier", pa.int64(), False, "of those, sent by an earlier run, not in bronze yet"),
    ("recovered", pa.int64(), False, "of those, sent to the topics by this run (acknowledged)"),
    ("still_missing", pa.int64(), False, "of those, neither in bronze nor sent (dry run, refused)"),
    ("recovered_event_ids", pa.list_(pa.string()), False, "provider event ids this run sent"),
    ("window_start", ARROW_TS, False, "start of the listed window of event creation (UTC, incl.)"),
    ("window_end", ARROW_TS, False, "end of the listed window (UTC, exclusive)"),
    ("dry_run", pa.bool_(), False, "true: compared only, nothing was sent"),
    ("reconciled_at", ARROW_TS, False, "when the run listed the provider's events (UTC)"),
)

ALL_TABLES: tuple[TableSchema, ...] = (
    BRONZE_WEBHOOK_EVENTS,
    SILVER_PAYMENT_EVENTS,
    SILVER_QUARANTINE,
    GOLD_PAYMENT_SCORES,
    GOLD_MERCHANT_DAILY,
    GOLD_RECONCILIATION,
)

#: The Polars types of timestamps and of major-unit money, for the transforms' expressions.
TS: pl.DataType = pl.from_arrow(pa.array([], ARROW_TS)).dtype
AMOUNT: pl.DataType = pl.from_arrow(pa.array([], ARROW_AMOUNT)).dtype
AMOUNT_SCALE: int = ARROW_AMOUNT.scale


def conform(frame: pl.DataFrame, table: TableSchema) -> pl.DataFrame:
    """``frame`` with exactly ``table``'s columns, in order and cast to its Polars types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in table.polars.items()])
