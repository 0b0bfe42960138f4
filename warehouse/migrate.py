"""Schema changes Iceberg cannot make in place: a decimal column's new scale.

Iceberg widens a decimal's precision in place but never changes its scale, and the money columns
went from decimal(20, 3) to decimal(24, 4) (four-decimal currencies: CLF, UYW). ``rescale``
migrates a table created with the old type, in steps that are each one commit and can be told
apart from the table's schema, so a crash at any point is finished by the next ``ensure_table``
(every process calls it when it starts) and running it again changes nothing:

1. one schema commit renames the old column ``<name>__before_rescale`` (its values stay
   readable; optional now, so appends by the new code, which does not know it, go through) and
   adds the column again with the new type, in its place (optional: the rows written before
   have no value in it);
2. the data files that may hold rows without the new value are rewritten partition by
   partition, one OVERWRITE commit each (so incremental readers skip them), the value computed
   anew by the spec's ``recompute`` (silver's ``amount``: from ``amount_minor`` and the
   provider's exponent, which also corrects rows written by the former ISO-only rule) or else
   the old value cast (a larger scale loses nothing);
3. one schema commit drops the old column.

A reader whose watermark predates the migration still reads, from the snapshots it has not read
yet, the files those snapshots added: their rows come with the new column null. Stop the loop
before an upgrade, so no process on the old code appends while the table is migrated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa
from pyiceberg.expressions import And, IsNull
from pyiceberg.table import FileScanTask, Table
from pyiceberg.typedef import Record
from pyiceberg.types import DecimalType

from transforms.schemas import Column
from warehouse.io import commit_rewrite, read_files, with_commit_retry
from warehouse.maintenance import SUMMARY_OPERATION, partition_predicate

#: Suffix of a column's old values while it is migrated.
SUFFIX = "__before_rescale"
#: A column's new values from the rows (every column of the table, the old one included).
Recompute = Callable[[pl.DataFrame], pl.Series]


def rescale(
    table: Table,
    columns: tuple[Column, ...],
    recompute: Mapping[str, Recompute],
    max_partitions: int | None = None,
) -> int:
    """Migrate every decimal of ``columns`` the table holds with another scale (or is midway
    through); at most ``max_partitions`` rewrites per column. The partitions rewritten."""
    rewritten = 0
    for column in _pending(table, columns):
        if column.name + SUFFIX not in table.schema().column_names:
            _swap(table, columns, column)
        done, finished = _rewrite(table, column, recompute.get(column.name), max_partitions)
        rewritten += done
        if finished:
            with table.update_schema() as update:
                update.delete_column(column.name + SUFFIX)
    return rewritten


def _decimal(column: Column) -> DecimalType:
    return DecimalType(column.type.precision, column.type.scale)


def _pending(table: Table, columns: tuple[Column, ...]) -> list[Column]:
    """Decimal columns whose scale the table does not hold yet, or that are midway through."""
    schema = table.schema()
    names = set(schema.column_names)
    pending = []
    for column in columns:
        if not pa.types.is_decimal(column.type) or column.name not in names:
            continue
        held = schema.find_field(column.name).field_type
        scale_differs = isinstance(held, DecimalType) and held.scale != column.type.scale
        if scale_differs or column.name + SUFFIX in names:
            pending.append(column)
    return pending


def _swap(table: Table, columns: tuple[Column, ...], column: Column) -> None:
    """Step 1: the old column renamed, the new one added in its place (one commit)."""
    names = [c.name for c in columns]
    before = names[names.index(column.name) - 1] if names.index(column.name) else None

    def attempt() -> None:
        if column.name + SUFFIX in table.schema().column_names:
            return  # another process did it
        tx = table.transaction()
        with tx.update_schema() as update:  # optional: the new code's appends leave it empty
            update.rename_column(column.name, column.name + SUFFIX)
            update.make_column_optional(column.name)
        with tx.update_schema() as update:
            update.add_column(column.name, _decimal(column), doc=column.doc)
            if before is None:
                update.move_first(column.name)
            else:
                update.move_after(column.name, before)
        tx.commit_transaction()

    with_commit_retry(table, attempt)


def _to_rewrite(table: Table, name: str) -> dict[Record, list[FileScanTask]]:
    """Per partition, the files that may hold rows without a value in ``name``."""
    partitions: dict[Record, list[FileScanTask]] = {}
    for task in table.scan(row_filter=IsNull(name)).plan_files():
        partitions.setdefault(task.file.partition, []).append(task)
    return partitions


def _rewrite(
    table: Table, column: Column, recompute: Recompute | None, max_partitions: int | None
) -> tuple[int, bool]:
    """Step 2, partition by partition; how many were rewritten and whether none is left."""
    partitions = list(_to_rewrite(table, column.name))
    limit = len(partitions) if max_partitions is None else min(max_partitions, len(partitions))
    for partition in partitions[:limit]:
        _rewrite_partition(table, column, recompute, partition)
    return limit, limit == len(partitions)


def _rewrite_partition(
    table: Table, column: Column, recompute: Recompute | None, partition: Record
) -> None:
    predicate = partition_predicate(table, partition)
    summary = {SUMMARY_OPERATION: f"rescale {column.name} to {_decimal(column)}"}

    def attempt() -> None:
        scan = table.scan(row_filter=And(predicate, IsNull(column.name)))
        tasks = [t for t in scan.plan_files() if t.file.partition == partition]
        if tasks:  # none: another process rewrote it meanwhile
            rows = _with_new_values(read_files(table, tasks), column, recompute)
            commit_rewrite(table, [t.file for t in tasks], rows, predicate, summary)

    with_commit_retry(table, attempt)


def _with_new_values(rows: pa.Table, column: Column, recompute: Recompute | None) -> pa.Table:
    """``rows`` with ``column`` filled where empty: recomputed, else the old value cast."""
    frame = pl.from_arrow(rows)
    target = pl.from_arrow(pa.array([], column.type)).dtype
    old = frame[column.name + SUFFIX].cast(target)
    fresh = recompute(frame).cast(target) if recompute is not None else old
    values = frame.select(pl.coalesce(frame[column.name], fresh, old)).to_series()
    index = rows.schema.get_field_index(column.name)
    return rows.set_column(index, rows.schema.field(index), values.to_arrow().cast(column.type))
