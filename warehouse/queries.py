"""The reads the flows make, each bounded by partitions or keys so that none reads a whole table
it does not need: silver's dedup lookup, the quarantine's recorded ids (and the one write such a
read decides: ``record_quarantine``), day windows, history.

Silver, the scores and ``gold.merchant_daily`` are partitioned by the day of
``provider_created_at`` (``warehouse.tables``), bronze by the day of ``received_at``: a window on
those columns prunes whole partitions, a key lookup prunes files by their statistics. Each read
goes through ``warehouse.io.scan``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    LessThan,
)
from pyiceberg.table import Table

from warehouse import io
from warehouse.tables import ALL_TABLES, TableSpec

CREATED = "provider_created_at"


def seen_event_ids(silver: Table, events: pl.DataFrame) -> pl.Series:
    """Event ids of ``events`` already in silver, looked up only in the days the batch touches.

    A provider's retry of an event carries the same ``created``, so duplicates always fall on the
    same ``provider_created_at`` day: the lookup is bounded by the batch's days, not the table.
    """
    none = pl.Series("event_id", [], pl.String)
    if events.is_empty() or silver.current_snapshot() is None:
        return none
    lo = events[CREATED].min()  # a retry has the same created: no wider window
    hi = events[CREATED].max() + timedelta(microseconds=1)
    found = io.scan(silver, row_filter=_between(CREATED, lo, hi), columns=("event_id",))
    return pl.from_arrow(found)["event_id"] if found.num_rows else none


def record_quarantine(quarantine: Table, rows: pl.DataFrame, summary: dict[str, str]) -> int:
    """Append the quarantine ``rows`` not yet in the table, decided inside the commit against
    the snapshot it builds on, so that two loaders promoting the same bronze rows (or a re-run
    after a crash) record each once; the rows appended."""

    def plan(_base: object) -> io.Planned:
        return io.Planned(unrecorded_quarantine(quarantine, rows).to_arrow(), summary)

    return io.append_planned(quarantine, plan)[1].num_rows


def unrecorded_quarantine(quarantine: Table, rows: pl.DataFrame) -> pl.DataFrame:
    """The quarantine ``rows`` not yet in the table (a re-run after a crash must not add them
    twice), looked up by ``quarantine_id``."""
    if rows.is_empty() or quarantine.current_snapshot() is None:
        return rows
    ids = rows["quarantine_id"].to_list()
    existing = io.scan(quarantine, row_filter=In("quarantine_id", ids), columns=("quarantine_id",))
    if existing.num_rows == 0:
        return rows
    return rows.filter(
        ~pl.col("quarantine_id").is_in(pl.from_arrow(existing)["quarantine_id"].implode())
    )


def rows_on_days(table: Table, days: Iterable[date], columns: Sequence[str]) -> pl.DataFrame:
    """The ``columns`` of the rows whose ``provider_created_at`` falls on one of ``days`` (UTC):
    one scan of the window from the first day to the last, then only those days."""
    days = sorted(set(days))
    lo = datetime.combine(days[0], time.min, UTC)
    hi = datetime.combine(days[-1], time.min, UTC) + timedelta(days=1)
    read = list(dict.fromkeys((*columns, CREATED)))
    rows = pl.from_arrow(io.scan(table, row_filter=_between(CREATED, lo, hi), columns=read))
    return rows.filter(pl.col(CREATED).dt.date().is_in(days)).select(columns)


def silver_since(
    silver: Table, since: datetime, columns: Sequence[str], until: datetime | None = None
) -> pl.DataFrame:
    """Silver rows created at ``since`` or later (and before ``until``, when given), with those of
    ``columns`` the table has."""
    present = set(silver.schema().column_names)
    window = GreaterThanOrEqual(CREATED, since.isoformat())
    rows = io.scan(
        silver,
        row_filter=window if until is None else _between(CREATED, since, until),
        columns=[c for c in columns if c in present],
    )
    return pl.from_arrow(rows)


def days_with_rows(table: Table, since: date | None = None) -> list[date]:
    """The UTC days of ``provider_created_at`` (from ``since``) that hold rows, oldest first, from
    the partition values of the planned files: no data file is read."""
    spec, schema = table.spec(), table.schema()
    position = next(
        (
            i
            for i, field in enumerate(spec.fields)
            if schema.find_column_name(field.source_id) == CREATED and str(field.transform) == "day"
        ),
        None,
    )
    if position is None:
        raise ValueError(f"{table.name()} is not partitioned by the day of {CREATED}")
    row_filter: BooleanExpression = AlwaysTrue()
    if since is not None:
        row_filter = GreaterThanOrEqual(CREATED, datetime.combine(since, time.min, UTC).isoformat())
    tasks = table.scan(row_filter=row_filter)
    epoch = date(1970, 1, 1)
    days = {epoch + timedelta(days=t.file.partition[position]) for t in tasks.plan_files()}
    return sorted(d for d in days if since is None or d >= since)


def on_days(days: Iterable[date]) -> BooleanExpression:
    """Rows whose ``provider_created_at`` falls from the first of ``days`` to the end of the
    last (UTC): a filter partition pruning turns into those partitions."""
    days = sorted(set(days))
    lo = datetime.combine(days[0], time.min, UTC)
    return _between(CREATED, lo, datetime.combine(days[-1], time.min, UTC) + timedelta(days=1))


def latest_span(silver: Table, span: timedelta, columns: Sequence[str]) -> pl.DataFrame:
    """Silver rows of the ``span`` up to its latest event (two scans: the latest event time,
    then the window); the whole table when it is empty."""
    latest = pl.from_arrow(io.scan(silver, columns=(CREATED,)))[CREATED].max()
    if latest is None:
        return pl.from_arrow(io.scan(silver, columns=columns))
    since = GreaterThanOrEqual(CREATED, (latest - span).isoformat())
    return pl.from_arrow(io.scan(silver, since, columns=columns))


def received_between(bronze: Table, start: date, end: date) -> pl.DataFrame:
    """Bronze deliveries received from day ``start`` to day ``end`` (UTC, both included)."""
    lo = datetime.combine(start, time.min, UTC)
    hi = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    return pl.from_arrow(io.scan(bronze, row_filter=_between("received_at", lo, hi)))


def rows_with(
    table: Table, column: str, values: Sequence[object], columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Every row whose ``column`` is one of ``values`` (a key lookup: file statistics prune),
    with ``columns`` (default all)."""
    return pl.from_arrow(io.scan(table, row_filter=In(column, list(values)), columns=columns))


def quarantined_between(quarantine: Table, start: date, end: date) -> pl.DataFrame:
    """Silver's quarantine rows of deliveries received from day ``start`` to day ``end`` (UTC,
    both included): the ones a backfill of those days accounts for."""
    lo = datetime.combine(start, time.min, UTC)
    hi = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    rows = pl.from_arrow(io.scan(quarantine, row_filter=_between("received_at", lo, hi)))
    return rows.filter(pl.col("layer") == "silver")


def all_rows(table: Table) -> pl.DataFrame:
    """The whole table (for small tables only, such as the quarantine)."""
    return pl.from_arrow(io.scan(table))


def existing_table(catalog: Catalog, spec: TableSpec) -> Table | None:
    """The spec's table, or None when it (or its namespace) was never created; creates nothing."""
    try:
        return catalog.load_table(spec.identifier_str)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def freshness(catalog: Catalog) -> dict[str, datetime | None]:
    """Per table that exists: the time of its newest snapshot (None: created, never written)."""
    fresh: dict[str, datetime | None] = {}
    for spec in ALL_TABLES:
        table = existing_table(catalog, spec)
        if table is None:
            continue
        newest = max((s.timestamp_ms for s in table.snapshots()), default=None)
        fresh[spec.identifier_str] = (
            None if newest is None else datetime.fromtimestamp(newest / 1000, tz=UTC)
        )
    return fresh


def _between(column: str, lo: datetime, hi: datetime) -> BooleanExpression:
    """``lo <= column < hi``."""
    return And(GreaterThanOrEqual(column, lo.isoformat()), LessThan(column, hi.isoformat()))
