"""Table maintenance the flows call: compaction of small files and snapshot expiry.

pyiceberg has neither, so both are small and conservative here. Compaction works one partition at
a time (reads only that partition's small files, commits one OVERWRITE snapshot per partition), so
memory is bounded by a partition and incremental readers skip it. Expiry never removes a snapshot
that a downstream layer may still read from: see ``expire_snapshots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
)
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.typedef import Record

from warehouse.io import RowFilter, commit_rewrite, read_files, with_commit_retry
from warehouse.tables import SUMMARY_OFFSETS, SUMMARY_SOURCE_SNAPSHOT

#: Snapshot summary key marking maintenance commits.
SUMMARY_OPERATION = "lakehouse.operation"
#: Summary keys whose newest snapshot is always kept: the watermarks of the no-loss protocol.
WATERMARK_KEYS = (SUMMARY_OFFSETS, SUMMARY_SOURCE_SNAPSHOT)
SMALL_FILE_BYTES = 64 * 1024 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CompactionResult:
    """What one ``compact`` call did."""

    partitions: int = 0
    files_removed: int = 0
    files_added: int = 0
    rows: int = 0
    snapshot_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExpiryResult:
    """What one ``expire_snapshots`` call did."""

    expired: int
    retained: int
    cutoff: datetime


def compact(
    table: Table,
    min_files: int = 8,
    row_filter: RowFilter | None = None,
    max_partitions: int | None = None,
    small_file_bytes: int = SMALL_FILE_BYTES,
) -> CompactionResult:
    """Rewrite the small files of every partition that has at least ``min_files`` of them.

    ``row_filter`` limits the partitions looked at (timestamps need their offset:
    ``"received_at >= '2026-11-01T00:00:00+00:00'"``); ``max_partitions`` bounds the work of one
    call. Row count and content stay the same.
    """
    result = CompactionResult()
    for partition in _partitions_to_compact(table, min_files, row_filter, small_file_bytes):
        if max_partitions is not None and result.partitions >= max_partitions:
            break
        done = _compact_partition(table, partition, min_files, small_file_bytes)
        if done is not None:
            removed, added, rows, snapshot_id = done
            result = CompactionResult(
                result.partitions + 1,
                result.files_removed + removed,
                result.files_added + added,
                result.rows + rows,
                (*result.snapshot_ids, snapshot_id),
            )
    return result


def _small_files(table: Table, row_filter: RowFilter | None, small: int) -> list[FileScanTask]:
    scan = table.scan(row_filter=row_filter if row_filter is not None else AlwaysTrue())
    spec_id = table.spec().spec_id
    return [
        t
        for t in scan.plan_files()
        if t.file.spec_id == spec_id and t.file.file_size_in_bytes < small
    ]


def _partitions_to_compact(
    table: Table, min_files: int, row_filter: RowFilter | None, small: int
) -> list[Record]:
    counts: dict[Record, int] = defaultdict(int)
    for task in _small_files(table, row_filter, small):
        counts[task.file.partition] += 1
    return [partition for partition, n in counts.items() if n >= max(min_files, 2)]


def _compact_partition(
    table: Table, partition: Record, min_files: int, small: int
) -> tuple[int, int, int, int] | None:
    predicate = partition_predicate(table, partition)

    def attempt() -> tuple[int, int, int, int] | None:
        tasks = [t for t in _small_files(table, predicate, small) if t.file.partition == partition]
        if len(tasks) < max(min_files, 2):  # someone else compacted it meanwhile
            return None
        rows = read_files(table, tasks)
        summary = {SUMMARY_OPERATION: "compaction"}
        snapshot_id = commit_rewrite(table, [t.file for t in tasks], rows, predicate, summary)
        added = int(table.snapshot_by_id(snapshot_id).summary.get("added-data-files", 0))
        return len(tasks), added, rows.num_rows, snapshot_id

    return with_commit_retry(table, attempt)


def partition_predicate(table: Table, partition: Record) -> BooleanExpression:
    """A row filter selecting exactly one partition of the table's current spec."""
    schema = table.schema()
    terms: list[BooleanExpression] = []
    for pos, field in enumerate(table.spec().fields):
        column, value = schema.find_column_name(field.source_id), partition[pos]
        if value is None:
            terms.append(IsNull(column))
        elif isinstance(field.transform, IdentityTransform):
            terms.append(EqualTo(column, value))
        elif isinstance(field.transform, DayTransform):
            start = _EPOCH + timedelta(days=value)
            terms.append(GreaterThanOrEqual(column, start.isoformat()))
            terms.append(LessThan(column, (start + timedelta(days=1)).isoformat()))
        else:
            raise NotImplementedError(f"compaction does not handle {field.transform}")
    return reduce(And, terms) if terms else AlwaysTrue()


def expire_snapshots(
    table: Table,
    older_than: datetime,
    retain_last: int = 10,
    protect: Iterable[int] = (),
) -> ExpiryResult:
    """Expire snapshots older than ``older_than``, keeping what readers still need.

    Kept: the last ``retain_last`` snapshots of the current lineage; ``protect`` (the watermarks
    downstream layers hold on this table); the newest snapshot holding each watermark summary key
    (bronze offsets, silver/gold source snapshot). Because readers walk the lineage from those
    snapshots to the current one, nothing newer than the oldest of them is expired either.
    Data files are not deleted (pyiceberg 0.12 has no orphan-file removal).
    """
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware (UTC)")
    if retain_last < 1:
        raise ValueError("retain_last must be at least 1 (the current snapshot)")

    def attempt() -> ExpiryResult:
        lineage = list(ancestors_of(table.current_snapshot(), table.metadata))
        needed = (set(protect) | _watermark_anchors(table)) & {s.snapshot_id for s in lineage}
        cutoff_ms = min(
            [int(older_than.timestamp() * 1000)]
            + [s.timestamp_ms for s in lineage if s.snapshot_id in needed]
        )
        keep = needed | {s.snapshot_id for s in lineage[:retain_last]}
        expired = [
            s.snapshot_id
            for s in table.snapshots()
            if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep
        ]
        if expired:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        cutoff = datetime.fromtimestamp(cutoff_ms / 1000, tz=UTC)
        return ExpiryResult(len(expired), len(table.snapshots()), cutoff)

    return with_commit_retry(table, attempt)


def _watermark_anchors(table: Table) -> set[int]:
    """The newest snapshot of the current lineage holding each watermark key."""
    anchors: dict[str, int] = {}
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        for key in WATERMARK_KEYS:
            if key in props:
                anchors.setdefault(key, snapshot.snapshot_id)
        if len(anchors) == len(WATERMARK_KEYS):
            break
    return set(anchors.values())
