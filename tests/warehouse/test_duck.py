"""DuckDB over the lakehouse: views named namespace.table, empty tables, docs, time travel."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

import warehouse
from tests.support.tables import make_quarantine_rows, make_silver_events
from warehouse.catalog import get_catalog
from warehouse.duck import connect, extension_path, s3_secret_sql
from warehouse.io import append, ensure_table, ensure_tables, replace_partition
from warehouse.tables import ALL_TABLES, SILVER_PAYMENT_EVENTS, SILVER_QUARANTINE

pytestmark = pytest.mark.integration


def _count(con, table: str) -> int:
    return con.sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_every_table_is_a_view_with_the_appended_rows_and_column_docs() -> None:
    tables = ensure_tables(get_catalog())
    append(tables["silver.payment_events"], make_silver_events(range(7)), {})

    con = connect()

    views = con.sql(
        "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    assert {v for (v,) in views} == {spec.identifier_str for spec in ALL_TABLES}
    assert _count(con, "silver.payment_events") == 7
    total = con.sql("SELECT SUM(amount), MIN(provider_created_at) FROM silver.payment_events")
    amount, first = total.fetchone()
    assert amount == 21 and first.tzinfo is not None
    doc = con.sql(
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'silver' AND "
        "table_name = 'payment_events' AND column_name = 'amount_minor'"
    ).fetchone()
    (amount_minor,) = (c for c in SILVER_PAYMENT_EVENTS.columns if c.name == "amount_minor")
    assert doc == (amount_minor.doc,)


def test_empty_and_never_created_tables_are_queryable_with_their_types() -> None:
    ensure_table(get_catalog(), SILVER_QUARANTINE)  # created, no snapshot; the others not created

    con = connect()

    for spec in ALL_TABLES:
        assert _count(con, spec.identifier_str) == 0
    columns = dict(
        con.sql(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE "
            "schema_name = 'silver' AND table_name = 'payment_events'"
        ).fetchall()
    )
    assert columns["amount"] == "DECIMAL(24,4)"
    assert columns["provider_created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert list(columns) == SILVER_PAYMENT_EVENTS.column_names
    assert _count(con, "silver.quarantine") == 0


def test_time_travel_by_snapshot_id_and_by_timestamp_returns_the_older_state() -> None:
    tables = ensure_tables(get_catalog())
    events, quarantine = tables["silver.payment_events"], tables["silver.quarantine"]
    first = append(events, make_silver_events(range(3)), {})
    time.sleep(0.01)
    append(quarantine, make_quarantine_rows(range(2)), {})
    time.sleep(0.01)
    append(events, make_silver_events(range(3, 5)), {})
    replace_partition(quarantine, make_quarantine_rows(range(0)), "offset = 0", {})

    now = connect()
    assert (_count(now, "silver.payment_events"), _count(now, "silver.quarantine")) == (5, 1)
    then = connect(snapshot_id=first)  # other tables as they were when that snapshot landed
    assert (_count(then, "silver.payment_events"), _count(then, "silver.quarantine")) == (3, 0)
    moment = datetime.fromtimestamp(quarantine.snapshots()[0].timestamp_ms / 1000, tz=UTC)
    at = connect(as_of=moment)
    assert (_count(at, "silver.payment_events"), _count(at, "silver.quarantine")) == (3, 2)
    before = connect(as_of=datetime(2000, 1, 1, tzinfo=UTC))
    assert _count(before, "silver.payment_events") == 0


def test_time_travel_refuses_unknown_snapshots_and_naive_timestamps() -> None:
    ensure_tables(get_catalog())
    with pytest.raises(ValueError, match="no table has snapshot 42"):
        connect(snapshot_id=42)
    with pytest.raises(ValueError, match="timezone-aware"):
        connect(as_of=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_sql_returns_arrow() -> None:
    append(ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS), make_silver_events(range(4)), {})
    # how long connect() takes is measured by bench/duckdb_scan.py, not asserted here
    result = warehouse.sql("SELECT currency, COUNT(*) AS n FROM silver.payment_events GROUP BY 1")

    assert result.to_pylist() == [{"currency": "USD", "n": 4}]


def test_extensions_come_from_the_pypi_wheels() -> None:
    for name in ("avro", "iceberg", "httpfs"):
        path = extension_path(name)
        assert path.is_file() and path.name == f"{name}.duckdb_extension"


def test_s3_secret_is_built_from_pyiceberg_catalog_properties() -> None:
    props = {
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.access-key-id": "minio",
        "s3.secret-access-key": "it's secret",
        "s3.region": "us-east-1",
    }

    secret = s3_secret_sql(props)

    assert secret == (
        "CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3, KEY_ID 'minio', "
        "SECRET 'it''s secret', REGION 'us-east-1', ENDPOINT '127.0.0.1:9000', "
        "USE_SSL false, URL_STYLE 'path')"
    )
    assert s3_secret_sql({}) is None
