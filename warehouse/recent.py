"""This process's latest appends, kept in memory so the next layer does not read them back.

A micro-batch appends a batch to bronze and, moments later, silver reads exactly those rows
(``read_appended_since``): the Parquet files just written are decoded again. ``RecentAppends``
keeps the Arrow table of each append by table and snapshot id; ``appended_since`` answers from
it when every APPEND snapshot between the reader's watermark and the current snapshot is held
(or all but the newest, which another thread committed a moment ago and is still to hand over:
the answer then stops before them), and from the files otherwise (another process appended, the
entries were evicted, the process restarted). Either way the rows and the watermark agree, so the
no-loss protocol does not change.

Thread-safe: the bronze loader and the silver/gold stages run in different threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import pyarrow as pa
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of

from warehouse import io

APPEND = Operation.APPEND

#: Rows kept per table before the oldest entries are evicted (a bronze batch of 200,000
#: deliveries is about 400 MB).
DEFAULT_MAX_ROWS = 450_000


class RecentAppends:
    """Arrow tables of recent appends by table name and snapshot id, bounded by rows per table."""

    def __init__(self, max_rows_per_table: int = DEFAULT_MAX_ROWS) -> None:
        self._max_rows = max_rows_per_table
        self._tables: dict[str, OrderedDict[int, pa.Table]] = {}
        self._lock = threading.Lock()

    def put(self, table: Table, snapshot_id: int, rows: pa.Table) -> None:
        """Remember what ``snapshot_id`` appended (``rows`` as committed: conformed)."""
        with self._lock:
            entries = self._tables.setdefault(_key(table), OrderedDict())
            entries[snapshot_id] = rows
            while len(entries) > 1 and sum(t.num_rows for t in entries.values()) > self._max_rows:
                entries.popitem(last=False)

    def append(self, table: Table, rows: pa.Table, summary: dict[str, str]) -> int:
        """Append ``rows`` in one commit (``warehouse.io.append``) and remember them as
        committed (conformed); the snapshot id."""
        rows = io.conform(table, rows)
        snapshot_id = io.append(table, rows, summary=summary)
        self.put(table, snapshot_id, rows)
        return snapshot_id

    def release(self, table: Table, snapshot_ids: Iterable[int]) -> None:
        """Forget entries a reader has consumed for good."""
        with self._lock:
            entries = self._tables.get(_key(table), {})
            for snapshot_id in snapshot_ids:
                entries.pop(snapshot_id, None)

    def held(self, table: Table) -> int:
        """Rows held for ``table``."""
        with self._lock:
            return sum(t.num_rows for t in self._tables.get(_key(table), {}).values())

    def appended_since(
        self, table: Table, after_snapshot_id: int | None, columns: Sequence[str] | None = None
    ) -> tuple[pa.Table, int | None, list[int]]:
        """As ``warehouse.io.read_appended_since``, plus the APPEND snapshot ids it covered when
        the answer came from memory (empty when it was read from the files).

        From memory the answer may stop short of the current snapshot: appends committed a
        moment ago by another thread, not yet held, are left for the next read (the watermark
        returned is the newest snapshot answered)."""
        current = table.current_snapshot()
        if current is not None and after_snapshot_id != current.snapshot_id:
            held = self._collect(table, current, after_snapshot_id)
            if held is not None:
                ids, parts, upto = held
                rows = (
                    pa.concat_tables(parts, promote_options="permissive")
                    if parts
                    else table.schema().as_arrow().empty_table()
                )
                return (rows.select(list(columns)) if columns else rows), upto, ids
        rows, mark = io.read_appended_since(table, after_snapshot_id, columns)
        return rows, mark, []

    def _collect(
        self, table: Table, current: Snapshot, after: int | None
    ) -> tuple[list[int], list[pa.Table], int] | None:
        """The held APPEND snapshots after ``after`` (oldest first), their rows and the snapshot
        answered up to; None when the files must answer: a snapshot is not held, the watermark
        is not in the lineage, or (``after`` None: the whole table) the lineage has a rewrite."""
        with self._lock:
            entries = dict(self._tables.get(_key(table), {}))
        chain: list[tuple[int, bool]] = []  # (snapshot id, is an append), newest first
        for snapshot in ancestors_of(current, table.metadata):
            if snapshot.snapshot_id == after:
                break
            is_append = snapshot.summary is not None and snapshot.summary.operation == APPEND
            chain.append((snapshot.snapshot_id, is_append))
        else:
            if after is not None:
                return None  # the watermark is not in the lineage: let the files answer
        newest = 0
        while newest < len(chain) and chain[newest][1] and chain[newest][0] not in entries:
            newest += 1  # committed by another thread a moment ago: the next read takes them
        chain = chain[newest:]
        if not chain:
            return None
        if after is None and not all(is_append for _, is_append in chain):
            return None  # the whole table: rows a rewrite kept are not in memory
        # rewrites add no new rows (read_appended_since skips them too)
        ids = [snapshot_id for snapshot_id, is_append in reversed(chain) if is_append]
        if any(i not in entries for i in ids):
            return None
        return ids, [entries[i] for i in ids], chain[0][0]


def _key(table: Table) -> str:
    return ".".join(table.name())
