"""Where each layer stands, kept in the snapshot summaries of its own table (the no-loss
protocol, ``docs/architecture.md``):

- bronze records, with every append, the next Kafka offset of each topic-partition it has
  consumed (``SUMMARY_OFFSETS``: ``{"topic:partition": offset}``); and, as a table property
  set when a partition first appears, the offset it began reading each from
  (``PROPERTY_FIRST_OFFSETS``, for the audit);
- silver and gold record the last snapshot of the table below that they have read
  (``SUMMARY_SOURCE_SNAPSHOT``), and read the next batch from there.

A watermark is the value in the newest snapshot of the current lineage that carries the key, so
a commit without it (compaction, a rebuild) does not move it. A stage that moves a watermark
commits only if it is still where the stage read from (``unmoved``): with several loaders, the
first to promote a range wins and the others learn it (``Superseded``) instead of promoting it
again.
"""

from __future__ import annotations

import json

import pyarrow as pa
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from warehouse import io
from warehouse.tables import PROPERTY_FIRST_OFFSETS, SUMMARY_OFFSETS, SUMMARY_SOURCE_SNAPSHOT

PartitionKey = str  # "topic:partition", as ``ingest.offsets`` spells it


class Superseded(RuntimeError):
    """Another writer moved the watermark since this stage read from it: nothing was committed,
    and the range is (being) promoted elsewhere; the next pass reads from the new watermark."""


def watermark(table: Table) -> int | None:
    """The last source snapshot ``table`` has read (None: it has read nothing yet)."""
    return watermark_in(table.metadata)


def watermark_in(metadata: TableMetadata) -> int | None:
    """As ``watermark``, in the table as ``metadata`` describes it (a commit's base)."""
    raw = io.latest_summary_value_in(metadata, SUMMARY_SOURCE_SNAPSHOT)
    return int(raw) if raw else None


def unmoved(old: int | None) -> io.Check:
    """A commit check: the table's watermark is still ``old`` (else ``Superseded``)."""

    def check(base: TableMetadata) -> None:
        now = watermark_in(base)
        if now != old:
            raise Superseded(f"the watermark moved from {old} to {now} since this stage read")

    return check


def source_summary(snapshot_id: int | None) -> dict[str, str]:
    """The snapshot summary that moves a reader's watermark to ``snapshot_id``."""
    return {SUMMARY_SOURCE_SNAPSHOT: str(snapshot_id)}


def advance_watermark(table: Table, old: int | None, new: int | None) -> None:
    """Record that the source's newest snapshots held no rows (an empty commit), so that readers
    of the watermark see this layer caught up and the next read starts after them; nothing when
    another writer moved it meanwhile."""
    if new is not None and new != old:
        try:
            note(table, source_summary(new), check=unmoved(old))
        except Superseded:
            pass


def note(table: Table, summary: dict[str, str], check: io.Check | None = None) -> int:
    """An empty commit whose snapshot summary holds ``summary``: a record readers of the table
    get no rows from (a held batch, a moved watermark); the snapshot id. ``check`` as in
    ``warehouse.io.append``."""
    empty = pa.Table.from_pylist([], schema=table.schema().as_arrow())
    return io.append(table, empty, summary=summary, check=check)


def recorded_offsets(bronze: Table) -> dict[PartitionKey, int]:
    """The next offset of every topic-partition bronze has committed (empty: none yet)."""
    return recorded_offsets_in(bronze.metadata)


def recorded_offsets_in(metadata: TableMetadata) -> dict[PartitionKey, int]:
    """As ``recorded_offsets``, in bronze as ``metadata`` describes it (a commit's base)."""
    raw = io.latest_summary_value_in(metadata, SUMMARY_OFFSETS)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}


def first_offsets(bronze: Table) -> dict[PartitionKey, int]:
    """The offset bronze began reading each topic-partition from (the audit checks from there)."""
    return first_offsets_in(bronze.metadata)


def first_offsets_in(metadata: TableMetadata) -> dict[PartitionKey, int]:
    """As ``first_offsets``, in bronze as ``metadata`` describes it (a commit's base)."""
    raw = metadata.properties.get(PROPERTY_FIRST_OFFSETS)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}


def offsets_summary(offsets: dict[PartitionKey, int]) -> dict[str, str]:
    """The snapshot summary of a bronze append that records ``offsets`` (every partition)."""
    return {SUMMARY_OFFSETS: json.dumps(offsets, sort_keys=True)}


def first_offsets_property(first: dict[PartitionKey, int]) -> dict[str, str]:
    """The table property that records where bronze began reading each partition."""
    return {PROPERTY_FIRST_OFFSETS: json.dumps(first, sort_keys=True)}
