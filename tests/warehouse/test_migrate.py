"""The amount columns' new scale on a warehouse created with the old schema: ``ensure_table``
migrates it (rename, add, rewrite per partition, drop), recomputing silver's amount by the
provider's rules; the migration is idempotent and finishes after a crash between any two of its
commits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import DecimalType

from warehouse.catalog import ensure_table, get_catalog
from warehouse.io import append, scan
from warehouse.migrate import SUFFIX, rescale
from warehouse.tables import GOLD_MERCHANT_DAILY, SILVER_PAYMENT_EVENTS, TableSpec

OLD_AMOUNT = pa.decimal128(20, 3)
#: Columns the old silver schema did not have.
NEW_SILVER = ("object_amount_minor", "livemode", "api_version")
NEW_DAILY = ("refund_volume_minor", "refund_volume", "dispute_volume_minor", "dispute_volume")
DAY = datetime(2026, 11, 20, 10, tzinfo=UTC)


def old_spec(spec: TableSpec, new: tuple[str, ...]) -> TableSpec:
    """``spec`` as it was before: money as decimal(20, 3), without the ``new`` columns."""
    columns = tuple(
        c._replace(type=OLD_AMOUNT) if pa.types.is_decimal(c.type) else c
        for c in spec.columns
        if c.name not in new
    )
    return replace(spec, schema=replace(spec.schema, columns=columns))


OLD_SILVER = old_spec(SILVER_PAYMENT_EVENTS, NEW_SILVER)
OLD_DAILY = old_spec(GOLD_MERCHANT_DAILY, NEW_DAILY)

#: (currency, amount_minor, the amount the ISO-only rule stored, the amount by Stripe's rules)
MONEY = [
    ("USD", 1234, Decimal("12.340"), Decimal("12.34")),
    ("ISK", 50_000, Decimal("50000"), Decimal("500.00")),  # Stripe: two decimals
    ("MGA", 1_000, Decimal("10.00"), Decimal("1000")),  # Stripe: zero decimals
    ("KWD", 5_120, Decimal("5.120"), Decimal("5.12")),
]


def old_silver_rows(days: int) -> pa.Table:
    rows = []
    for d in range(days):
        for i, (currency, minor, stored, _) in enumerate(MONEY):
            at = DAY + timedelta(days=d, minutes=i)
            rows.append(
                {
                    "event_id": f"stripe:evt_{d}_{i}",
                    "provider": "stripe",
                    "provider_event_id": f"evt_{d}_{i}",
                    "event_type": "payment.succeeded",
                    "provider_event_type": "payment_intent.succeeded",
                    "object_id": f"pi_{d}_{i}",
                    "amount_minor": minor,
                    "currency": currency,
                    "amount": stored,
                    "provider_created_at": at,
                    "received_at": at,
                    "processed_at": at,
                    "delivery_id": f"webhooks.stripe.payment_intent:0:{d * 10 + i}",
                    "schema_version": 1,
                }
            )
    schema = pa.schema([OLD_SILVER.arrow_schema.field(n) for n in rows[0]])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture
def catalog() -> Catalog:
    return get_catalog()


@pytest.fixture
def old_silver(catalog: Catalog):
    """silver.payment_events as the old code created it: three day partitions of rows."""
    table = ensure_table(catalog, OLD_SILVER)
    for d in range(3):  # one append per day: several files, three partitions
        append(table, old_silver_rows(3).slice(d * len(MONEY), len(MONEY)), summary={})
    return table


def amounts(table) -> dict[str, tuple[int, Decimal]]:
    rows = scan(table, columns=("event_id", "amount_minor", "amount")).to_pylist()
    return {r["event_id"]: (r["amount_minor"], r["amount"]) for r in rows}


def test_an_old_warehouse_is_migrated_on_ensure_table(catalog: Catalog, old_silver) -> None:
    assert old_silver.schema().find_field("amount").field_type == DecimalType(20, 3)

    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)

    assert table.schema().find_field("amount").field_type == DecimalType(24, 4)
    assert table.schema().column_names == SILVER_PAYMENT_EVENTS.column_names  # in spec order
    got = amounts(table)
    assert len(got) == 3 * len(MONEY)
    for d in range(3):
        for i, (_, minor, _, major) in enumerate(MONEY):
            assert got[f"stripe:evt_{d}_{i}"] == (minor, major)
    operations = [s.summary.get("lakehouse.operation") for s in table.snapshots()]
    assert operations.count("rescale amount to decimal(24, 4)") == 3  # one per partition


def test_the_migration_is_idempotent(catalog: Catalog, old_silver) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    snapshot, schema_id = table.current_snapshot().snapshot_id, table.schema().schema_id

    again = ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)

    assert again.current_snapshot().snapshot_id == snapshot
    assert again.schema().schema_id == schema_id


@pytest.mark.parametrize("partitions_before_the_crash", [0, 1, 2])
def test_a_migration_stopped_between_two_commits_is_finished_by_the_next_process(
    catalog: Catalog, old_silver, partitions_before_the_crash: int
) -> None:
    # the state a crash leaves: the columns swapped, some partitions rewritten, the rest not
    spec = SILVER_PAYMENT_EVENTS
    rescale(old_silver, spec.columns, spec.recompute, max_partitions=partitions_before_the_crash)
    midway = get_catalog().load_table(spec.identifier_str)
    assert "amount" + SUFFIX in midway.schema().column_names
    assert sum(v[1] is None for v in amounts(midway).values()) == 4 * (
        3 - partitions_before_the_crash
    )

    table = ensure_table(get_catalog(), spec)  # the next process to start

    assert "amount" + SUFFIX not in table.schema().column_names
    assert set(amounts(table).values()) == {(minor, major) for _, minor, _, major in MONEY}


def test_rows_appended_midway_by_the_new_code_are_left_as_they_are(
    catalog: Catalog, old_silver
) -> None:
    spec = SILVER_PAYMENT_EVENTS
    rescale(old_silver, spec.columns, spec.recompute, max_partitions=0)
    fresh = old_silver_rows(1).slice(0, 1).to_pylist()[0]
    fresh |= {"event_id": "stripe:evt_new", "amount": Decimal("12.3400")}
    table = get_catalog().load_table(spec.identifier_str)
    schema = pa.schema([table.schema().as_arrow().field(n) for n in fresh])
    append(table, pa.Table.from_pylist([fresh], schema=schema), summary={})

    table = ensure_table(get_catalog(), spec)

    assert amounts(table)["stripe:evt_new"] == (1234, Decimal("12.34"))
    assert len(amounts(table)) == 3 * len(MONEY) + 1


def test_merchant_daily_volumes_keep_their_values_at_the_new_scale(catalog: Catalog) -> None:
    old = ensure_table(catalog, OLD_DAILY)
    row = {
        "merchant_id": "acct_1",
        "day": date(2026, 11, 20),
        "currency": "KWD",
        "volume_minor": 12_345,
        "volume": Decimal("12.345"),
        "payments_succeeded": 1,
        "payments_failed": 0,
        "payments_canceled": 0,
        "refunds": 0,
        "disputes": 0,
        "updated_at": DAY,
    }
    append(old, pa.Table.from_pylist([row], schema=OLD_DAILY.arrow_schema), summary={})

    table = ensure_table(catalog, GOLD_MERCHANT_DAILY)

    assert table.schema().find_field("volume").field_type == DecimalType(24, 4)
    (migrated,) = scan(table).to_pylist()
    assert migrated["volume"] == Decimal("12.345") and migrated["refund_volume"] is None
