"""Compaction per partition and snapshot expiry that keeps what readers still need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.tables import DAY, make_merchant_daily, make_silver_events
from warehouse.catalog import get_catalog
from warehouse.io import (
    Table,
    append,
    ensure_table,
    latest_summary_value,
    read_appended_since,
    read_files,
    scan,
)
from warehouse.maintenance import SUMMARY_OPERATION, compact, expire_snapshots
from warehouse.tables import GOLD_MERCHANT_DAILY, SILVER_PAYMENT_EVENTS, SUMMARY_OFFSETS

pytestmark = pytest.mark.integration
LATER = datetime.now(UTC) + timedelta(days=1)


@pytest.fixture
def events() -> Table:
    return ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)


def _files_per_day(table: Table) -> dict[int, int]:
    counts: dict[int, int] = {}
    for task in table.scan().plan_files():
        counts[task.file.partition[0]] = counts.get(task.file.partition[0], 0) + 1
    return counts


def test_compaction_rewrites_each_crowded_partition_into_one_file_keeping_the_rows(
    events: Table,
) -> None:
    next_day = DAY + timedelta(days=1)
    for start in range(0, 40, 10):  # 4 small files on DAY, 1 on the next day
        append(events, make_silver_events(range(start, start + 10)), {})
    append(events, make_silver_events(range(40, 45), day=next_day, merchant="acct_0"), {})
    before = scan(events).sort_by("event_id")

    result = compact(events, min_files=3)

    assert (result.partitions, result.files_removed, result.files_added) == (1, 4, 1)
    assert result.rows == 40
    assert sorted(_files_per_day(events).values()) == [1, 1]
    assert scan(events).sort_by("event_id").equals(before)
    snapshot = events.snapshot_by_id(result.snapshot_ids[0])
    assert snapshot.summary[SUMMARY_OPERATION] == "compaction"
    assert snapshot.summary.operation.value == "overwrite"
    assert compact(events, min_files=3).partitions == 0  # nothing left to do


def test_compaction_is_limited_to_the_filtered_partitions(events: Table) -> None:
    for day in (DAY, DAY + timedelta(days=1)):
        for start in range(0, 20, 10):
            append(events, make_silver_events(range(start, start + 10), day=day), {})

    result = compact(
        events, min_files=2, row_filter="provider_created_at >= '2026-11-21T00:00:00+00:00'"
    )

    assert result.partitions == 1
    assert sorted(_files_per_day(events).values()) == [1, 2]


def test_compaction_sorts_rows_by_the_table_sort_order(events: Table) -> None:
    for merchant in ("acct_c", "acct_a", "acct_b"):
        append(events, make_silver_events(range(3), merchant=merchant), {})

    compact(events, min_files=2)

    (task,) = events.scan().plan_files()
    merchants = read_files(events, [task]).column("merchant_id").to_pylist()
    assert merchants == sorted(merchants)


def test_expiry_keeps_protected_snapshots_and_everything_after_them(events: Table) -> None:
    ids = [append(events, make_silver_events(range(i, i + 1)), {}) for i in range(6)]

    result = expire_snapshots(events, older_than=LATER, retain_last=1, protect={ids[2]})

    assert result.expired == 2
    assert [s.snapshot_id for s in events.snapshots()] == ids[2:]
    rows, _ = read_appended_since(events, ids[2])  # the downstream watermark still works
    assert rows.num_rows == 3
    reloaded = get_catalog().load_table("silver.payment_events")
    assert [s.snapshot_id for s in reloaded.snapshots()] == ids[2:]
    assert scan(reloaded).num_rows == 6


def test_expiry_keeps_the_newest_watermark_snapshot_and_respects_age(events: Table) -> None:
    ids = [append(events, make_silver_events(range(0, 2)), {SUMMARY_OFFSETS: '{"t:0": 2}'})]
    ids += [append(events, make_silver_events(range(i, i + 1)), {}) for i in range(2, 5)]
    ids += [compact(events, min_files=2).snapshot_ids[0]]

    assert expire_snapshots(events, older_than=DAY, retain_last=1).expired == 0  # too young
    result = expire_snapshots(events, older_than=LATER, retain_last=1)

    assert result.expired == 0  # the offsets snapshot is the oldest one
    assert latest_summary_value(events, SUMMARY_OFFSETS) == '{"t:0": 2}'
    ids.append(append(events, make_silver_events(range(5, 6)), {SUMMARY_OFFSETS: '{"t:0": 6}'}))
    assert expire_snapshots(events, older_than=LATER, retain_last=1).expired == 5
    assert latest_summary_value(events, SUMMARY_OFFSETS) == '{"t:0": 6}'


def test_expiry_refuses_naive_times_and_retaining_nothing(events: Table) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expire_snapshots(events, older_than=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="retain_last"):
        expire_snapshots(events, older_than=LATER, retain_last=0)


def test_compaction_handles_identity_date_partitions() -> None:
    table = ensure_table(get_catalog(), GOLD_MERCHANT_DAILY)
    for volume in (100, 200):
        append(table, make_merchant_daily(DAY.date(), volume), {})
    append(table, make_merchant_daily((DAY + timedelta(days=1)).date(), 300), {})

    result = compact(table, min_files=2)

    assert (result.partitions, result.files_removed, result.rows) == (1, 2, 4)
    assert sorted(_files_per_day(table).values()) == [1, 1]
    assert sorted(scan(table).column("volume_minor").to_pylist()) == [100, 100, 200, 200, 300, 300]
