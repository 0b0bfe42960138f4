"""The bronze loader's commit (the no-loss protocol, ``docs/architecture.md``): a batch of
deliveries appended in one commit whose snapshot summary records, per topic-partition, the next
offset bronze holds; worked out inside the commit, against the snapshot it builds on.

Per partition the batch consumed, against the offset that snapshot records:

- the batch must connect: read from at most the recorded offset. Read from further on, the
  offsets between would never land: ``OffsetGap`` is raised and nothing is committed (the reader
  is positioned wrongly; the loader's next poll puts it back where bronze stands);
- rows below the recorded offset are in bronze already (another loader of the group recorded
  them, or this one before a rebalance): they are dropped before writing (*fenced*);
- the offset recorded becomes the larger of the recorded one and the batch's end: never back.

Partitions the loader no longer owns are left out whole, rows and offsets: their new owner reads
them from what bronze recorded. The partitions of other loaders keep their recorded offsets.
Fencing is Arrow compute over the partition and offset columns, and only for the partitions
that need it (none, when a single loader runs).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from warehouse import io
from warehouse.watermarks import (
    PartitionKey,
    first_offsets_in,
    first_offsets_property,
    offsets_summary,
    recorded_offsets_in,
)

#: A floor above every offset: the partition's rows are all left out.
_WHOLE = 2**63 - 1


class OffsetGap(RuntimeError):
    """A batch read from beyond the offset bronze recorded for a partition: committing it would
    skip the offsets between. Nothing is committed."""

    def __init__(self, partition: PartitionKey, recorded: int, start: int) -> None:
        super().__init__(
            f"{partition}: the batch was read from offset {start} but bronze recorded {recorded}; "
            f"committing it would skip offsets {recorded}..{start - 1}. Nothing was committed: "
            "the next poll reads again from bronze's offsets"
        )
        self.partition, self.recorded, self.start = partition, recorded, start


@dataclass(frozen=True)
class OffsetPlan:
    """What a bronze commit does to the offsets, against the offsets of its base snapshot."""

    floors: dict[PartitionKey, int]  # rows below the floor are left out (``_WHOLE``: all)
    recorded: dict[PartitionKey, int]  # the summary's offsets after the commit, every partition
    first: dict[PartitionKey, int]  # where bronze began reading each partition


@dataclass(frozen=True)
class BronzeCommit:
    """What a bronze commit landed: its snapshot (None: nothing new to commit), the rows written,
    the offsets recorded (every partition) and how many rows of the batch were left out."""

    snapshot_id: int | None
    rows: pa.Table
    recorded: dict[PartitionKey, int]
    left_out: int


def plan_offsets(
    base: Mapping[PartitionKey, int],
    starts: Mapping[PartitionKey, int],
    ends: Mapping[PartitionKey, int],
    owned: Collection[PartitionKey] | None = None,
    first: Mapping[PartitionKey, int] | None = None,
) -> OffsetPlan:
    """Per partition of ``ends`` (the next offset after the batch's last row, per partition with
    rows), read from ``starts`` (negative: the partition's first offset), against ``base`` (the
    offsets recorded in the snapshot the commit builds on, and ``first``, where bronze began
    reading each); ``owned`` None: every partition."""
    floors: dict[PartitionKey, int] = {}
    recorded, began = dict(base), dict(first or {})
    for key, end in ends.items():
        if owned is not None and key not in owned:
            floors[key] = _WHOLE
            continue
        if key not in starts:
            raise ValueError(f"{key}: the batch does not say where it was read from")
        start, at = starts[key], base.get(key)
        if at is not None and start > at:
            raise OffsetGap(key, at, start)
        if at is not None and start < at:
            floors[key] = at
        if at is None:
            began.setdefault(key, max(start, 0))
        recorded[key] = end if at is None else max(at, end)
    return OffsetPlan(floors, recorded, began)


def fence(rows: pa.Table, floors: Mapping[PartitionKey, int]) -> pa.Table:
    """``rows`` without those of each partition of ``floors`` whose offset is below its floor."""
    if not floors or rows.num_rows == 0:
        return rows
    topic, partition, offset = rows["topic"], rows["partition"], rows["offset"]
    drop = None
    for key, floor in floors.items():
        name, number = key.rsplit(":", 1)
        below = pc.and_(
            pc.and_(pc.equal(topic, name), pc.equal(partition, int(number))),
            pc.less(offset, floor),
        )
        drop = below if drop is None else pc.or_(drop, below)
    return rows.filter(pc.invert(drop))


def append_deliveries(
    bronze: Table,
    rows: pa.Table,
    starts: Mapping[PartitionKey, int],
    ends: Mapping[PartitionKey, int],
    owned: Collection[PartitionKey] | None = None,
) -> BronzeCommit:
    """Append a batch of deliveries (``bronze.webhook_events`` rows read from ``starts`` up to
    ``ends``) in one commit recording its offsets, fenced against the snapshot it builds on.

    Raises ``OffsetGap`` when the batch does not connect to what bronze recorded."""
    planned: dict[str, OffsetPlan] = {}

    def plan(base: TableMetadata) -> io.Planned | None:
        offsets, first = recorded_offsets_in(base), first_offsets_in(base)
        decided = plan_offsets(offsets, starts, ends, owned, first)
        planned["plan"] = decided
        kept = fence(rows, decided.floors)
        if kept.num_rows == 0 and decided.recorded == offsets:
            return None  # nothing new: every row is in bronze already, or not ours
        began = first_offsets_property(decided.first) if decided.first != first else {}
        return io.Planned(kept, offsets_summary(decided.recorded), began)

    snapshot_id, committed = io.append_planned(bronze, plan)
    recorded = planned["plan"].recorded
    return BronzeCommit(snapshot_id, committed, recorded, rows.num_rows - committed.num_rows)
