"""The small verbs every layer uses on Iceberg tables: ensure (from ``warehouse.catalog``), append,
read incrementally, scan, replace a partition, look up keys.

Each write is one commit (one snapshot) carrying the caller's snapshot summary properties, retried
with a refreshed table when another writer committed first; what depends on the table as the
commit finds it (bronze's offsets, the quarantine rows not yet recorded, a watermark still where a
stage read from) is worked out inside each attempt, against the snapshot that attempt commits on
(``append_planned``, ``check``). Rewrites (``replace_partition``,
compaction) commit a single OVERWRITE snapshot, which ``read_appended_since`` skips, so a reader
that follows a table by snapshot watermark never sees a row twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date
from functools import reduce
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, In, Or, parser
from pyiceberg.expressions.visitors import bind
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _dataframe_to_data_files,
    _expression_to_complementary_pyarrow,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import FileScanTask, Table, TableProperties, WriteTask
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.table.sorting import SortDirection
from pyiceberg.transforms import IdentityTransform
from pyiceberg.utils.properties import property_as_int
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

__all__ = [
    "Table",
    "append",
    "append_planned",
    "Planned",
    "commit_rewrite",
    "conform",
    "existing_keys",
    "latest_summary_value",
    "latest_summary_value_in",
    "read_appended_since",
    "read_files",
    "replace_keyed",
    "replace_partition",
    "replace_rows",
    "scan",
    "sort_for_write",
    "with_commit_retry",
]

# ``Table`` (pyiceberg's table handle) is what every verb takes; the other layers get it from here.


def __getattr__(name: str) -> Any:
    """``ensure_table``/``ensure_tables`` of ``warehouse.catalog``, still importable from here:
    not imported at the top because the catalog's migrations (``warehouse.migrate``) write with
    this module's verbs, and a top-level import both ways would be a cycle."""
    if name in ("ensure_table", "ensure_tables"):
        from warehouse import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'warehouse.io' has no attribute {name!r}")


#: A row filter: an Iceberg expression or its string form (``"day = '2026-11-01'"``).
RowFilter = str | BooleanExpression
T = TypeVar("T")


@dataclass(frozen=True)
class Planned:
    """What one append commits: its rows, its snapshot summary, and table properties set in the
    same commit (rarely: they are stored once, not with every snapshot)."""

    rows: pa.Table
    summary: dict[str, str]
    properties: dict[str, str] = dataclass_field(default_factory=dict)


#: An append worked out from the metadata the commit builds on; None: nothing to commit.
Plan = Callable[[TableMetadata], Planned | None]
#: A condition on the metadata a commit builds on; raises to abandon the commit.
Check = Callable[[TableMetadata], None]

_STRINGS = {pa.string(), pa.large_string()}


def conform(table: Table, data: pa.Table) -> pa.Table:
    """``data`` in the table's column order and types; absent optional columns become nulls.

    Raises ``ValueError`` for unknown columns and for nulls (or absence) in required columns.
    """
    target = table.schema().as_arrow()
    unknown = set(data.column_names) - set(target.names)
    if unknown:
        raise ValueError(f"{table.name()}: unknown columns {sorted(unknown)}")
    arrays = [_conform_column(data, field) for field in target]
    return pa.Table.from_arrays(
        arrays, schema=pa.schema([f.with_type(a.type) for f, a in zip(target, arrays, strict=True)])
    )


def _conform_column(data: pa.Table, field: pa.Field) -> pa.ChunkedArray:
    if field.name not in data.column_names:
        column = pa.chunked_array([pa.nulls(data.num_rows, field.type)], field.type)
    else:
        column = data.column(field.name)
    if not (column.type == field.type or {column.type, field.type} <= _STRINGS):
        column = column.cast(field.type)
    if not field.nullable and column.null_count:
        raise ValueError(f"required column {field.name!r} has {column.null_count} nulls")
    return column


#: Attempts of one commit against other writers (the loaders, silver, gold, maintenance): every
#: attempt plans again on the refreshed table (pyiceberg's own retries are off).
COMMIT_ATTEMPTS = 20


def with_commit_retry(table: Table, attempt: Callable[[], T]) -> T:
    """Run ``attempt``; after a lost commit race, refresh the table and run it again."""
    for retry in Retrying(
        retry=retry_if_exception_type((CommitFailedException, ValidationException)),
        stop=stop_after_attempt(COMMIT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.05, max=2),
        before_sleep=lambda _: table.refresh(),
        reraise=True,
    ):
        with retry:
            return attempt()
    raise AssertionError("unreachable")  # pragma: no cover


def append(
    table: Table, data: pa.Table, summary: dict[str, str], check: Check | None = None
) -> int:
    """Append ``data`` in one commit whose snapshot summary holds ``summary``; the snapshot id.

    ``check`` runs in every attempt on the metadata the commit builds on (a watermark that must
    not have moved, ``warehouse.watermarks.unmoved``) and raises to abandon the commit.
    """

    def plan(base: TableMetadata) -> Planned:
        if check is not None:
            check(base)
        return Planned(data, summary)

    snapshot_id, _ = append_planned(table, plan)
    assert snapshot_id is not None
    return snapshot_id


def append_planned(table: Table, plan: Plan) -> tuple[int | None, pa.Table]:
    """One append whose rows and summary ``plan`` works out from the table as the commit finds
    it; the snapshot id (None: the plan found nothing to commit) and the rows committed.

    ``plan`` runs in every attempt with the metadata that attempt commits on (after a lost race,
    the refreshed table's). The commit carries pyiceberg's requirement on that base snapshot
    (``AssertRefSnapshotId`` on ``main``: ``_SnapshotProducer._commit`` in pyiceberg 0.12's
    ``table/update/snapshot.py``), so a concurrent commit makes it fail and plan again instead of
    landing on a base it was not planned for; pyiceberg's own retry, which would re-apply the
    same rows and summary on the new base, is off (``commit.retry.num-retries`` = 0,
    ``warehouse.catalog.TABLE_DEFAULTS``).

    Rows are written in arrival order (sorting costs more than a micro-batch can pay); compaction
    rewrites them in the table's sort order. As ``Table.append`` (merge or fast append by the
    table's properties), but a batch that falls in a single partition is written as it is,
    without the copy pyiceberg makes of each partition's rows (a bronze batch is one day's).
    """

    def attempt() -> tuple[int | None, pa.Table]:
        tx = table.transaction()
        planned = plan(tx.table_metadata)
        if planned is None:
            return None, _empty(table, None)
        _check_summary(planned.summary)
        rows = conform(table, planned.rows)
        if planned.properties:
            tx.set_properties(planned.properties)
        with tx._append_snapshot_producer(
            planned.summary
        ) as files:  # merge or fast, as Table.append
            if rows.num_rows:
                for data_file in _data_files(tx.table_metadata, rows, table.io, files.commit_uuid):
                    files.append_data_file(data_file)
        tx.commit_transaction()
        return _current_id(table), rows

    return with_commit_retry(table, attempt)


def _data_files(
    metadata: TableMetadata, rows: pa.Table, io: FileIO, write_uuid: uuid.UUID
) -> Iterable[DataFile]:
    """Data files for ``rows`` (already conformed): pyiceberg's own split unless they all fall in
    one partition, then written from their own record batches."""
    key = _single_partition(metadata, rows)
    if key is None:
        return _dataframe_to_data_files(metadata, rows, io, write_uuid)
    schema = pyarrow_to_schema(
        rows.schema,
        name_mapping=metadata.schema().name_mapping,
        format_version=metadata.format_version,
    )
    target = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    tasks = (
        WriteTask(write_uuid, task_id, schema, batches, partition_key=key)
        for task_id, batches in enumerate(bin_pack_arrow_table(rows, target))
    )
    return write_file(io, metadata, tasks)


def _single_partition(metadata: TableMetadata, rows: pa.Table) -> PartitionKey | None:
    """The partition every row of ``rows`` falls in, or None (several, or unpartitioned)."""
    spec, schema = metadata.spec(), metadata.schema()
    if spec.is_unpartitioned():
        return None
    values = []
    for field in spec.fields:
        source = schema.find_field(field.source_id)
        column = rows.column(schema.find_column_name(field.source_id))
        distinct = pc.unique(field.transform.pyarrow_transform(source.field_type)(column))
        if len(distinct) != 1:
            return None
        values.append(PartitionFieldValue(field=field, value=distinct[0].as_py()))
    return PartitionKey(field_values=values, partition_spec=spec, schema=schema)


def latest_summary_value(table: Table, key: str) -> str | None:
    """``key`` in the summary of the newest snapshot of the current lineage that has it."""
    return latest_summary_value_in(table.metadata, key)


def latest_summary_value_in(metadata: TableMetadata, key: str) -> str | None:
    """As ``latest_summary_value``, in the table as ``metadata`` describes it (a commit's base)."""
    for snapshot in ancestors_of(metadata.current_snapshot(), metadata):
        if snapshot.summary is not None and key in snapshot.summary.additional_properties:
            return snapshot.summary[key]
    return None


def read_appended_since(
    table: Table, after_snapshot_id: int | None, columns: Sequence[str] | None = None
) -> tuple[pa.Table, int | None]:
    """Rows added by APPEND snapshots after ``after_snapshot_id`` up to the current snapshot, and
    the current snapshot id (the next watermark).

    OVERWRITE snapshots (compaction, partition rebuilds) are skipped, so no row is read twice.
    Only the manifests added by the new snapshots and the data files they list are read (in
    parallel). ``None`` means from the beginning: the current state of the table.
    """
    current = table.current_snapshot()
    if current is None or after_snapshot_id == current.snapshot_id:
        return _empty(table, columns), after_snapshot_id
    if after_snapshot_id is None:
        return scan(table, columns=columns), current.snapshot_id
    fields = tuple(columns) if columns else ("*",)
    incremental = table.incremental_append_scan(
        from_snapshot_id_exclusive=after_snapshot_id,
        to_snapshot_id_inclusive=current.snapshot_id,
        selected_fields=fields,
    )
    return incremental.to_arrow(), current.snapshot_id


def scan(
    table: Table,
    row_filter: RowFilter | None = None,
    columns: Sequence[str] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """Rows matching ``row_filter`` (partitions and file statistics prune what is read)."""
    return table.scan(
        row_filter=row_filter if row_filter is not None else AlwaysTrue(),
        selected_fields=tuple(columns) if columns else ("*",),
        snapshot_id=snapshot_id,
    ).to_arrow()


def existing_keys(
    table: Table,
    column: str,
    values: pa.Array | pa.ChunkedArray | Sequence[object],
    within: RowFilter | None = None,
) -> pa.Array:
    """The distinct ``values`` already present in ``column`` (dedupe by key without upserts).

    Cost: only ``column`` is read, and only from files that partition pruning (``within``, e.g.
    the batch's day range on the partition column) and min/max statistics cannot rule out. Random
    ids defeat statistics, so without ``within`` this reads the key column of the whole table.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    unique = pc.unique(values if isinstance(values, pa.Array) else pa.array(values))
    if len(unique) == 0 or table.current_snapshot() is None:
        return unique.slice(0, 0)
    expr: BooleanExpression = In(column, unique.to_pylist())
    if within is not None:
        expr = And(expr, _expression(within))
    found = scan(table, expr, columns=[column]).column(column)
    return pc.unique(found.combine_chunks())


def replace_partition(
    table: Table,
    data: pa.Table,
    row_filter: RowFilter,
    summary: dict[str, str],
    check: Check | None = None,
) -> int:
    """Replace the rows matching ``row_filter`` with ``data`` in one OVERWRITE commit.

    Files holding matching rows are rewritten without them (copy on write); rows of those files
    that do not match are kept. Returns the new snapshot id. ``check`` as in ``append``.
    """
    expr = _expression(row_filter)
    _check_summary(summary)

    def attempt() -> int:
        if check is not None:
            check(table.metadata)  # the base of the transaction commit_rewrite opens
        tasks = list(table.scan(row_filter=expr).plan_files())
        old = read_files(table, tasks)
        keep = _expression_to_complementary_pyarrow(bind(table.schema(), expr, case_sensitive=True))
        parts = [conform(table, old.filter(keep)), conform(table, data)]
        rows = pa.concat_tables(parts, promote_options="permissive")
        return commit_rewrite(table, [t.file for t in tasks], rows, expr, summary)

    return with_commit_retry(table, attempt)


def replace_rows(
    table: Table,
    data: pa.Table,
    column: str,
    values: Iterable[object],
    summary: dict[str, str],
    within: RowFilter | None = None,
    check: Check | None = None,
) -> int:
    """Replace the rows whose ``column`` is one of ``values`` with ``data`` (one OVERWRITE
    commit, as ``replace_partition``); dates match as ISO text, as Iceberg binds them.

    ``within`` (e.g. the rows' partitions) bounds the files rewritten: random keys defeat file
    statistics, so without it every file of the table may be rewritten. ``check`` as in
    ``append``."""
    return replace_keyed(table, data, {column: values}, summary, within, check)


def replace_keyed(
    table: Table,
    data: pa.Table,
    keys: Mapping[str, Iterable[object]],
    summary: dict[str, str],
    within: RowFilter | None = None,
    check: Check | None = None,
) -> int:
    """Replace the rows whose value in any column of ``keys`` is one of that column's values
    with ``data`` (one OVERWRITE commit, as ``replace_partition``), among the rows ``within``
    selects (all by default; see ``replace_rows``)."""
    terms: list[BooleanExpression] = [
        In(column, [v.isoformat() if isinstance(v, date) else v for v in values])
        for column, values in keys.items()
    ]
    row_filter = reduce(Or, terms)
    if within is not None:
        row_filter = And(_expression(within), row_filter)
    return replace_partition(table, data, row_filter, summary, check)


def read_files(table: Table, tasks: Sequence[FileScanTask]) -> pa.Table:
    """All rows of the planned files (``FileScanTask``s), their deletes applied."""
    return ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)


def commit_rewrite(
    table: Table,
    remove: Sequence[DataFile],
    rows: pa.Table,
    predicate: BooleanExpression,
    summary: dict[str, str],
) -> int:
    """One OVERWRITE snapshot: drop the ``remove`` files, add ``rows`` as new files.

    ``predicate`` must cover the removed files (it selects the manifests that are rewritten).
    """
    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties=summary).overwrite() as overwrite:
        overwrite.delete_by_predicate(predicate)
        for data_file in remove:
            overwrite.delete_data_file(data_file)
        if rows.num_rows:
            rows = sort_for_write(table, conform(table, rows))
            for data_file in _data_files(table.metadata, rows, table.io, overwrite.commit_uuid):
                overwrite.append_data_file(data_file)
    tx.commit_transaction()
    return _current_id(table)


def sort_for_write(table: Table, data: pa.Table) -> pa.Table:
    """``data`` in the table's sort order (identity fields), so rewritten files prune well."""
    schema = table.schema()
    keys = [
        (
            schema.find_column_name(f.source_id),
            "ascending" if f.direction == SortDirection.ASC else "descending",
        )
        for f in table.sort_order().fields
        if isinstance(f.transform, IdentityTransform)
    ]
    return data.sort_by(keys) if keys and data.num_rows > 1 else data


def _check_summary(summary: dict[str, str]) -> None:
    bad = sorted(k for k, v in summary.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        raise TypeError(f"snapshot summary values must be strings: {bad}")


def _expression(row_filter: RowFilter) -> BooleanExpression:
    return parser.parse(row_filter) if isinstance(row_filter, str) else row_filter


def _empty(table: Table, columns: Sequence[str] | None) -> pa.Table:
    schema = table.schema().as_arrow()
    return schema.empty_table().select(list(columns)) if columns else schema.empty_table()


def _current_id(table: Table) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None:  # pragma: no cover - a commit always leaves a snapshot
        raise RuntimeError(f"{table.name()} has no snapshot after a commit")
    return snapshot.snapshot_id
