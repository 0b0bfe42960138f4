"""Bronze's offsets worked out against the snapshot a commit builds on: a batch that connects
moves them on, one that overlaps another loader's is fenced, one that skips is refused; never
backwards; partitions no longer owned left out whole. Pure: no table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse.bronze import OffsetGap, fence, plan_offsets

A, B, C = "webhooks.stripe.charge:0", "webhooks.stripe.charge:1", "webhooks.stripe.refund:0"


def rows(*coordinates: tuple[str, int]) -> pa.Table:
    """Bronze rows reduced to what fencing reads: (partition key, offset) each."""
    keys = [key.rsplit(":", 1) for key, _ in coordinates]
    return pa.table(
        {
            "topic": pa.array([t for t, _ in keys], pa.string()),
            "partition": pa.array([int(p) for _, p in keys], pa.int32()),
            "offset": pa.array([o for _, o in coordinates], pa.int64()),
        }
    )


def test_a_batch_that_connects_moves_its_partitions_on_and_keeps_the_others() -> None:
    plan = plan_offsets(base={A: 10, C: 7}, starts={A: 10, B: 0}, ends={A: 15, B: 4})

    assert plan.recorded == {A: 15, B: 4, C: 7}
    assert plan.floors == {}


def test_a_batch_over_offsets_another_loader_recorded_is_fenced_below_them() -> None:
    plan = plan_offsets(base={A: 12}, starts={A: 10}, ends={A: 15})

    assert plan.floors == {A: 12}
    assert plan.recorded == {A: 15}
    kept = fence(rows((A, 10), (A, 11), (A, 12), (B, 3), (A, 14)), plan.floors)
    assert kept.column("offset").to_pylist() == [12, 3, 14]


def test_offsets_never_move_backwards_when_the_whole_batch_is_fenced() -> None:
    plan = plan_offsets(base={A: 40}, starts={A: 10}, ends={A: 15})

    assert plan.recorded == {A: 40}
    assert fence(rows((A, 10), (A, 14)), plan.floors).num_rows == 0


def test_a_batch_read_past_the_recorded_offset_is_refused_with_the_skipped_range() -> None:
    with pytest.raises(OffsetGap, match=r"charge:0.*read from offset 20.*skip offsets 10\.\.19"):
        plan_offsets(base={A: 10}, starts={A: 20}, ends={A: 25})


def test_a_partition_bronze_never_recorded_starts_wherever_it_was_read_from() -> None:
    plan = plan_offsets(base={}, starts={A: 500, B: -2}, ends={A: 510, B: 3})

    assert plan.recorded == {A: 510, B: 3}
    assert plan.floors == {}
    assert plan.first == {A: 500, B: 0}  # where the audit checks from


def test_where_bronze_began_a_partition_is_kept_once_recorded() -> None:
    plan = plan_offsets(base={A: 510}, starts={A: 510, B: 7}, ends={A: 520, B: 9}, first={A: 500})

    assert plan.first == {A: 500, B: 7}


def test_a_beginning_read_is_fenced_below_what_bronze_recorded() -> None:
    plan = plan_offsets(base={A: 5}, starts={A: -2}, ends={A: 9})

    assert plan.floors == {A: 5} and plan.recorded == {A: 9}


def test_partitions_no_longer_owned_are_left_out_rows_and_offsets() -> None:
    plan = plan_offsets(base={B: 3}, starts={A: 0, B: 3}, ends={A: 4, B: 8}, owned={A})

    assert plan.recorded == {A: 4, B: 3}
    kept = fence(rows((A, 0), (B, 3), (B, 7), (A, 3)), plan.floors)
    assert kept.column("offset").to_pylist() == [0, 3]


def test_a_batch_without_its_start_offsets_is_a_reader_bug_not_a_commit() -> None:
    with pytest.raises(ValueError, match="where it was read from"):
        plan_offsets(base={}, starts={}, ends={A: 4})


def test_fencing_nothing_returns_the_rows_untouched() -> None:
    batch = rows((A, 1), (B, 2))
    assert fence(batch, {}) is batch
