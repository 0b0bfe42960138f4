"""The reads that keep the scoring API's online features fresh (``serving.state``): silver's
recent rows once, then only the rows each new snapshot appended.

Silver is partitioned by the day of ``provider_created_at``: the recent span is found from the
partitions of the planned files (no data file read for it) and read with a window filter that
prunes the older days. Both reads of ``recent_rows`` use the same snapshot: the table object is
not refreshed in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

import polars as pl
from pyiceberg.expressions import GreaterThanOrEqual
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, ancestors_of

from warehouse import io
from warehouse.queries import CREATED, days_with_rows


def current_snapshot_id(table: Table) -> int | None:
    """The table's current snapshot (None: never written)."""
    snapshot = table.current_snapshot()
    return None if snapshot is None else snapshot.snapshot_id


def recent_rows(
    table: Table, span: timedelta, columns: Sequence[str]
) -> tuple[pl.DataFrame, int | None, bool]:
    """Rows created in the ``span`` up to the table's latest event, the snapshot read, and
    whether older rows were left out (the span does not reach the table's first day)."""
    snapshot = current_snapshot_id(table)
    days = days_with_rows(table)
    if not days:
        return pl.from_arrow(io.scan(table, columns=columns)), snapshot, False
    since = datetime.combine(days[-1] + timedelta(days=1), time.min, UTC) - span
    since = since.replace(hour=0, minute=0, second=0)
    window = GreaterThanOrEqual(CREATED, since.isoformat())
    rows = pl.from_arrow(io.scan(table, window, columns=columns, snapshot_id=snapshot))
    return rows, snapshot, days[0] < since.date()


def appended_since(
    table: Table, snapshot_id: int, columns: Sequence[str]
) -> tuple[pl.DataFrame, int | None] | None:
    """Rows the snapshots after ``snapshot_id`` appended, and the current snapshot; None when
    one of them rewrote or deleted rows (compaction, a backfill) or ``snapshot_id`` is no longer
    in the table's history: then read it whole again."""
    current = table.current_snapshot()
    if current is None:
        return None
    for snapshot in ancestors_of(current, table.metadata):
        if snapshot.snapshot_id == snapshot_id:
            rows, now = io.read_appended_since(table, snapshot_id, columns)
            return pl.from_arrow(rows), now
        if snapshot.summary is None or snapshot.summary.operation != Operation.APPEND:
            return None
    return None
