"""Where each layer stands, kept in the snapshot summaries of its own table (the no-loss
protocol, ``docs/architecture.md``):

- bronze records, with every append, the next Kafka offset of each topic-partition it has
  consumed (``SUMMARY_OFFSETS``: ``{"topic:partition": offset}``);
- silver and gold record the last snapshot of the table below that they have read
  (``SUMMARY_SOURCE_SNAPSHOT``), and read the next batch from there.

A watermark is the value in the newest snapshot of the current lineage that carries the key, so
a commit without it (compaction, a rebuild) does not move it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa
from pyiceberg.table import Table

from warehouse import io
from warehouse.tables import SUMMARY_OFFSETS, SUMMARY_SOURCE_SNAPSHOT

PartitionKey = str  # "topic:partition", as ``ingest.offsets`` spells it


def watermark(table: Table) -> int | None:
    """The last source snapshot ``table`` has read (None: it has read nothing yet)."""
    raw = io.latest_summary_value(table, SUMMARY_SOURCE_SNAPSHOT)
    return int(raw) if raw else None


def source_summary(snapshot_id: int | None) -> dict[str, str]:
    """The snapshot summary that moves a reader's watermark to ``snapshot_id``."""
    return {SUMMARY_SOURCE_SNAPSHOT: str(snapshot_id)}


def advance_watermark(table: Table, old: int | None, new: int | None) -> None:
    """Record that the source's newest snapshots held no rows (an empty commit), so that readers
    of the watermark see this layer caught up and the next read starts after them."""
    if new is not None and new != old:
        note(table, source_summary(new))


def note(table: Table, summary: dict[str, str]) -> int:
    """An empty commit whose snapshot summary holds ``summary``: a record readers of the table
    get no rows from (a held batch, a moved watermark); the snapshot id."""
    empty = pa.Table.from_pylist([], schema=table.schema().as_arrow())
    return io.append(table, empty, summary=summary)


def recorded_offsets(bronze: Table) -> dict[PartitionKey, int]:
    """The next offset of every topic-partition bronze has committed (empty: none yet)."""
    raw = io.latest_summary_value(bronze, SUMMARY_OFFSETS)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}


def offsets_summary(
    recorded: Mapping[PartitionKey, int], consumed: Mapping[PartitionKey, int]
) -> dict[str, str]:
    """The snapshot summary of a bronze append: what was recorded, moved on by ``consumed``
    (the partitions of other loaders keep their offsets)."""
    offsets = {**recorded, **consumed}
    return {SUMMARY_OFFSETS: json.dumps(offsets, sort_keys=True)}
