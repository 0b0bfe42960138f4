"""Tables from specs, appends with summaries, incremental reads, partition replacement, key lookup
— on real Iceberg tables in the test's own warehouse."""

from __future__ import annotations

import dataclasses
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import In
from pyiceberg.transforms import DayTransform, IdentityTransform

from tests.support.tables import (
    DAY,
    make_merchant_daily,
    make_quarantine_rows,
    make_silver_events,
    plain_type,
)
from transforms.schemas import Column
from warehouse import queries
from warehouse.catalog import get_catalog
from warehouse.io import (
    append,
    ensure_table,
    ensure_tables,
    existing_keys,
    latest_summary_value,
    read_appended_since,
    replace_partition,
    replace_rows,
    scan,
)
from warehouse.maintenance import compact
from warehouse.tables import (
    ALL_TABLES,
    GOLD_MERCHANT_DAILY,
    SILVER_PAYMENT_EVENTS,
    SILVER_QUARANTINE,
    SUMMARY_OFFSETS,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog() -> Catalog:
    return get_catalog()


def _ids(table: pa.Table, column: str = "event_id") -> list[str]:
    return sorted(table.column(column).to_pylist())


def test_catalog_is_sqlite_in_wal_mode_under_home(isolated_settings) -> None:
    get_catalog()
    db = isolated_settings / "catalog.db"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert (isolated_settings / "warehouse").is_dir()


def test_ensure_tables_creates_every_table_with_docs_partitioning_sort_and_identifier(
    catalog: Catalog,
) -> None:
    tables = ensure_tables(catalog)

    assert set(tables) == {spec.identifier_str for spec in ALL_TABLES}
    silver = tables["silver.payment_events"]
    (amount_minor,) = (c for c in SILVER_PAYMENT_EVENTS.columns if c.name == "amount_minor")
    assert silver.schema().find_field("amount_minor").doc == amount_minor.doc
    assert silver.schema().find_field("event_id").required
    assert not silver.schema().find_field("customer_id").required
    assert silver.schema().identifier_field_names() == {"event_id"}
    (field,) = silver.spec().fields
    assert isinstance(field.transform, DayTransform)
    assert silver.schema().find_column_name(field.source_id) == "provider_created_at"
    sort_columns = [
        silver.schema().find_column_name(f.source_id) for f in silver.sort_order().fields
    ]
    assert sort_columns == ["merchant_id", "provider_created_at"]
    assert silver.properties["comment"] == SILVER_PAYMENT_EVENTS.grain
    (daily_field,) = tables["gold.merchant_daily"].spec().fields
    assert isinstance(daily_field.transform, IdentityTransform)
    assert ensure_tables(catalog)["silver.payment_events"].metadata == silver.metadata  # idempotent


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.identifier_str)
def test_each_iceberg_table_has_the_columns_of_its_definition(catalog: Catalog, spec) -> None:
    schema = ensure_table(catalog, spec).schema()
    arrow = schema.as_arrow()

    assert arrow.names == spec.column_names
    for column, field in zip(spec.columns, schema.fields, strict=True):
        assert (field.required, field.doc) == (not column.nullable, column.doc), column.name
        theirs = arrow.field(column.name).type
        assert plain_type(theirs) == column.type, column.name


def test_new_spec_columns_are_added_and_existing_data_kept(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_QUARANTINE)
    append(table, make_quarantine_rows(range(3)), {})
    replay_count = Column("replay_count", pa.int32(), False, "replays so far")
    columns = dataclasses.replace(
        SILVER_QUARANTINE.schema, columns=(*SILVER_QUARANTINE.columns, replay_count)
    )
    evolved = dataclasses.replace(SILVER_QUARANTINE, schema=columns)

    table = ensure_table(catalog, evolved)
    append(
        table,
        make_quarantine_rows(range(3, 5)).append_column(
            "replay_count", pa.array([1, 2], pa.int32())
        ),
        {},
    )

    field = table.schema().find_field("replay_count")
    assert field.doc == "replays so far" and not field.required  # added columns are optional
    rows = scan(table).sort_by("offset")
    assert rows.column("replay_count").to_pylist() == [None, None, None, 1, 2]
    assert rows.column("error_code").to_pylist() == ["INVALID_JSON"] * 5


def test_append_records_summary_and_latest_value_is_found_behind_later_snapshots(
    catalog: Catalog,
) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    assert latest_summary_value(table, SUMMARY_OFFSETS) is None

    first = append(table, make_silver_events(range(2)), {SUMMARY_OFFSETS: '{"t:0": 2}'})
    second = append(table, make_silver_events(range(2, 4)), {SUMMARY_OFFSETS: '{"t:0": 4}'})
    third = append(table, make_silver_events(range(4, 6)), {"lakehouse.batch-id": "b3"})

    assert len({first, second, third}) == 3
    assert table.current_snapshot().snapshot_id == third
    assert table.snapshot_by_id(second).summary[SUMMARY_OFFSETS] == '{"t:0": 4}'
    assert latest_summary_value(table, SUMMARY_OFFSETS) == '{"t:0": 4}'
    reloaded = catalog.load_table("silver.payment_events")
    assert latest_summary_value(reloaded, SUMMARY_OFFSETS) == '{"t:0": 4}'


def test_append_conforms_order_and_types_and_refuses_bad_rows(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    rows = make_silver_events(range(3))
    shuffled = rows.select(list(reversed(rows.column_names)))
    shuffled = shuffled.set_column(  # int64 where the table has int32
        shuffled.schema.get_field_index("schema_version"),
        "schema_version",
        pa.array([1, 1, 1], pa.int64()),
    )

    append(table, shuffled, {})
    assert _ids(scan(table)) == _ids(rows)

    with pytest.raises(ValueError, match="unknown columns"):
        append(table, rows.append_column("typo", pa.array([1, 2, 3])), {})
    with pytest.raises(ValueError, match="'currency' has 1 nulls"):
        append(
            table,
            rows.set_column(
                rows.schema.get_field_index("currency"), "currency", pa.array(["USD", None, "EUR"])
            ),
            {},
        )


def _files_by_day(table) -> dict[object, int]:
    days: dict[object, int] = {}
    for task in table.scan().plan_files():
        day = task.file.partition[0]
        days[day] = days.get(day, 0) + task.file.record_count
    return days


def test_an_append_within_one_day_is_one_file_of_that_partition(catalog: Catalog) -> None:
    silver = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    rows = make_silver_events(range(0, 500))  # all on DAY
    # arriving in several chunks, as the consumer hands them over
    chunked = pa.concat_tables([rows.slice(0, 200), rows.slice(200, 300)])

    append(silver, chunked, summary={"batch": "1"})

    days = _files_by_day(silver)
    assert list(days.values()) == [500] and len(list(silver.scan().plan_files())) == 1
    (day,) = days
    assert day == (DAY.date() - date(1970, 1, 1)).days  # the day transform's value
    assert _ids(scan(silver)) == _ids(rows)
    assert scan(silver, row_filter=f"provider_created_at >= '{DAY.isoformat()}'").num_rows == 500


def test_an_append_spanning_days_is_split_into_one_file_per_day(catalog: Catalog) -> None:
    silver = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    first = make_silver_events(range(0, 30))
    second = make_silver_events(range(30, 50), day=DAY + timedelta(days=1))

    append(silver, pa.concat_tables([first, second]), summary={"batch": "1"})

    assert sorted(_files_by_day(silver).values()) == [20, 30]
    assert _ids(scan(silver)) == _ids(pa.concat_tables([first, second]))


def test_read_appended_since_returns_new_rows_once_even_after_compaction(
    catalog: Catalog,
) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    everything, mark = read_appended_since(table, None)
    assert everything.num_rows == 0 and mark is None

    for start in range(0, 30, 10):
        append(table, make_silver_events(range(start, start + 10)), {})
    first, mark = read_appended_since(table, None, columns=["event_id"])
    assert first.column_names == ["event_id"] and first.num_rows == 30

    append(table, make_silver_events(range(30, 35)), {})
    compact(table, min_files=2)  # rewrites all four files into one OVERWRITE snapshot
    append(table, make_silver_events(range(35, 40)), {})

    second, mark2 = read_appended_since(table, mark)
    assert _ids(second) == _ids(make_silver_events(range(30, 40)))
    assert mark2 == table.current_snapshot().snapshot_id
    nothing, mark3 = read_appended_since(table, mark2)
    assert nothing.num_rows == 0 and mark3 == mark2
    assert scan(table).num_rows == 40


def test_read_appended_since_works_when_manifests_are_merged(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    with table.transaction() as tx:
        tx.set_properties({"commit.manifest.min-count-to-merge": "2"})
    _, mark = read_appended_since(table, None)
    marks = []
    for start in range(0, 40, 10):
        append(table, make_silver_events(range(start, start + 10)), {})
        marks.append(table.current_snapshot().snapshot_id)

    rows, _ = read_appended_since(table, marks[1])
    assert _ids(rows) == _ids(make_silver_events(range(20, 40)))
    assert len(table.current_snapshot().manifests(table.io)) < 4


def test_replace_partition_rewrites_matching_rows_in_one_snapshot(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_QUARANTINE)
    append(table, make_quarantine_rows(range(5)), {})
    mark = table.current_snapshot().snapshot_id
    released = scan(table, "offset IN (1, 3)")
    released = released.set_column(
        released.schema.get_field_index("released_at"),
        "released_at",
        pa.array([DAY, DAY], pa.timestamp("us", tz="UTC")),
    )

    snapshot_id = replace_partition(table, released, "offset IN (1, 3)", {"lakehouse.by": "ops"})

    snapshot = table.snapshot_by_id(snapshot_id)
    assert snapshot.summary.operation.value == "overwrite"
    assert snapshot.summary["lakehouse.by"] == "ops"
    assert snapshot.parent_snapshot_id == mark  # one commit, one snapshot
    rows = scan(table).sort_by("offset")
    assert rows.num_rows == 5
    assert [v is not None for v in rows.column("released_at").to_pylist()] == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert read_appended_since(table, mark)[0].num_rows == 0  # nothing appended, nothing re-read


def test_replace_partition_of_an_empty_table_and_with_no_rows(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_QUARANTINE)
    replace_partition(table, make_quarantine_rows(range(2)), "offset >= 0", {})
    replace_partition(table, make_quarantine_rows(range(0)), "offset = 0", {})
    assert scan(table).column("offset").to_pylist() == [1]


def test_existing_keys_returns_only_keys_present_within_the_bound(catalog: Catalog) -> None:
    table = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    assert len(existing_keys(table, "event_id", ["stripe:evt_1"])) == 0
    append(table, make_silver_events(range(10)), {})

    found = existing_keys(
        table,
        "event_id",
        pa.array(["stripe:evt_3", "stripe:evt_99", "stripe:evt_3", "stripe:evt_7"]),
    )
    assert sorted(found.to_pylist()) == ["stripe:evt_3", "stripe:evt_7"]
    outside = existing_keys(
        table,
        "event_id",
        ["stripe:evt_3"],
        within="provider_created_at >= '2026-11-21T00:00:00+00:00'",
    )
    assert len(outside) == 0


def test_a_stale_table_handle_still_appends_without_losing_the_other_commit(
    catalog: Catalog,
) -> None:
    ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    first = catalog.load_table("silver.payment_events")
    stale = catalog.load_table("silver.payment_events")

    append(first, make_silver_events(range(3)), {})
    append(stale, make_silver_events(range(3, 5)), {SUMMARY_OFFSETS: "x"})

    assert scan(catalog.load_table("silver.payment_events")).num_rows == 5
    assert latest_summary_value(stale, SUMMARY_OFFSETS) == "x"


def test_concurrent_writers_lose_no_commit(catalog: Catalog) -> None:
    ensure_table(catalog, SILVER_PAYMENT_EVENTS)

    def writer(first: int) -> None:
        table = get_catalog().load_table("silver.payment_events")  # own catalog, own handle
        for start in range(first, first + 50, 10):
            append(table, make_silver_events(range(start, start + 10)), {})

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(writer, (0, 100, 200)))

    table = catalog.load_table("silver.payment_events")
    assert scan(table).num_rows == 150
    assert len(table.snapshots()) == 15


def test_merchant_daily_is_rebuilt_one_day_at_a_time(catalog: Catalog) -> None:
    table = ensure_table(catalog, GOLD_MERCHANT_DAILY)

    first, second = date(2026, 11, 20), date(2026, 11, 21)
    replace_partition(table, make_merchant_daily(first, 100), "day = '2026-11-20'", {})
    replace_partition(table, make_merchant_daily(second, 200), "day = '2026-11-21'", {})
    replace_partition(table, make_merchant_daily(first, 300), "day = '2026-11-20'", {})

    rows = scan(table).sort_by([("day", "ascending"), ("merchant_id", "ascending")])
    assert rows.column("volume_minor").to_pylist() == [300, 300, 200, 200]
    assert len(list(table.scan().plan_files())) == 2  # one file per day, the old one replaced


def test_replace_rows_within_a_day_rewrites_only_that_days_files(catalog: Catalog) -> None:
    silver = ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=3)]
    parts = [make_silver_events(range(10 * i, 10 * i + 10), day=d) for i, d in enumerate(days)]
    append(silver, pa.concat_tables(parts), summary={})
    before = {t.file.file_path: t.file.partition[0] for t in silver.scan().plan_files()}
    ids = ["stripe:evt_12", "stripe:evt_15"]
    changed = scan(silver, In("event_id", ids))
    changed = changed.set_column(
        changed.schema.get_field_index("merchant_id"), "merchant_id", pa.array(["acct_9"] * 2)
    )

    replace_rows(silver, changed, "event_id", ids, {}, within=queries.on_days([days[1].date()]))

    after = {t.file.file_path: t.file.partition[0] for t in silver.scan().plan_files()}
    untouched = {path for path, day in before.items() if day != _day_value(days[1])}
    assert untouched <= set(after) and len(after) == len(before)  # day 1's one file rewritten
    rows = scan(silver)
    assert rows.num_rows == 30
    moved = rows.filter(pc.equal(rows.column("merchant_id"), "acct_9"))
    assert sorted(moved.column("event_id").to_pylist()) == ids
    assert queries.days_with_rows(silver) == [d.date() for d in days]
    assert queries.days_with_rows(silver, days[1].date()) == [d.date() for d in days[1:]]


def _day_value(day: datetime) -> int:
    """The day transform's value of ``day``."""
    return (day.date() - date(1970, 1, 1)).days
