"""Table specs as data: every Iceberg table of the lakehouse, its columns and its layout.

A spec adds only the layout (partitioning, sort order, identifier fields, properties) to the
table's columns, which are defined once in ``transforms.schemas`` (names, types, nullability,
docs, grain), and, for a column whose type changed in a way Iceberg cannot evolve in place (a
decimal's scale), how ``warehouse.migrate`` computes it anew (``recompute``). One spec per
table, named like its columns, its Pandera contract and its GE suite (``silver.payment_events``
↔ ``SilverPaymentEvent`` ↔ ``silver_payment_events``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from transforms import money, schemas
from transforms.schemas import Column, TableSchema


@dataclass(frozen=True)
class TableSpec:
    """What a table is: its columns (``transforms.schemas``) and how Iceberg lays it out."""

    schema: TableSchema
    partition_by: tuple[tuple[str, str], ...] = ()  # (source column, transform: day|identity)
    sort_by: tuple[str, ...] = ()
    identifier: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict, hash=False)
    # column -> its values from the table's rows, when a migration rewrites it (default: cast)
    recompute: Mapping[str, Callable[[pl.DataFrame], pl.Series]] = field(
        default_factory=dict, hash=False
    )

    def __post_init__(self) -> None:
        laid_out = {c for c, _ in self.partition_by} | {*self.sort_by, *self.identifier}
        laid_out |= set(self.recompute)
        unknown = laid_out - set(self.column_names)
        if unknown:
            raise ValueError(f"{self.identifier_str}: layout names unknown columns {unknown}")

    @property
    def namespace(self) -> str:
        return self.schema.namespace

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def grain(self) -> str:
        return self.schema.grain

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.schema.columns

    @property
    def identifier_str(self) -> str:
        return self.schema.identifier_str

    @property
    def arrow_schema(self) -> pa.Schema:
        return self.schema.arrow

    @property
    def column_names(self) -> list[str]:
        return self.schema.column_names


BRONZE_WEBHOOK_EVENTS = TableSpec(
    schemas.BRONZE_WEBHOOK_EVENTS,
    partition_by=(("received_at", "day"),),
    sort_by=("topic", "partition", "offset"),
)
SILVER_PAYMENT_EVENTS = TableSpec(
    schemas.SILVER_PAYMENT_EVENTS,
    partition_by=(("provider_created_at", "day"),),
    sort_by=("merchant_id", "provider_created_at"),
    identifier=("event_id",),
    recompute={"amount": money.major_amount},
)
SILVER_QUARANTINE = TableSpec(
    schemas.SILVER_QUARANTINE,
    partition_by=(("quarantined_at", "day"),),
    identifier=("quarantine_id",),
)
GOLD_PAYMENT_SCORES = TableSpec(
    schemas.GOLD_PAYMENT_SCORES,
    partition_by=(("provider_created_at", "day"),),
    identifier=("event_id",),
)
GOLD_MERCHANT_DAILY = TableSpec(
    schemas.GOLD_MERCHANT_DAILY,
    partition_by=(("day", "identity"),),
)

GOLD_RECONCILIATION = TableSpec(
    schemas.GOLD_RECONCILIATION,
    partition_by=(("day", "identity"),),
    identifier=("run_id", "provider", "day"),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_WEBHOOK_EVENTS,
    SILVER_PAYMENT_EVENTS,
    SILVER_QUARANTINE,
    GOLD_PAYMENT_SCORES,
    GOLD_MERCHANT_DAILY,
    GOLD_RECONCILIATION,
)

# Snapshot summary properties written with each commit (the no-loss protocol).
SUMMARY_OFFSETS = "lakehouse.kafka-offsets"  # bronze: JSON {"topic:partition": next offset}
#: bronze's table property: JSON {"topic:partition": the offset bronze began reading it from}
#: (for the audit; a property, set when a partition first appears, not a summary per snapshot)
PROPERTY_FIRST_OFFSETS = "lakehouse.kafka-first-offsets"
SUMMARY_SOURCE_SNAPSHOT = "lakehouse.source-snapshot"  # silver/gold: last source snapshot read
SUMMARY_BATCH = "lakehouse.batch-id"
