"""The Iceberg reads of reconciliation: which of the provider's events bronze holds, which an
earlier run already sent, and the last reconciliation of each day (for ``lakehouse audit``).

Bronze is partitioned by the day of ``received_at``, not of the provider's ``created``, so the
lookup must bound the partitions by when a delivery of an event created in the window can have
been received:

- never before the window's start minus the signature tolerance: Stripe signs a delivery after it
  created the event, and the receiver refuses a signature timestamped more than the tolerance
  ahead of its clock, so ``received_at >= created - tolerance`` for every webhook;
- a recovered event is received when a reconciliation run sends it, after it was created;
- never after now.

So ``event_ids_in_bronze`` reads the ``event_id`` column of the partitions from
``window.start - tolerance`` to today (at most the 30 days Stripe lists, plus one), one day at a
time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThan

from warehouse import io, queries
from warehouse.tables import GOLD_RECONCILIATION

_NO_IDS = pl.Series("event_id", [], pl.String)


def event_ids_in_bronze(
    bronze: io.Table, event_ids: pl.Series, received_from: datetime, now: datetime | None = None
) -> pl.Series:
    """The ``event_ids`` of which bronze holds a delivery received at ``received_from`` or later
    (see the module docstring for why that bound is safe).

    One day partition at a time, the ``event_id`` column is read and matched in Polars: memory
    stays at one day's ids, and random ids defeat file statistics anyway. Measured on 900,000
    bronze rows over three days: 91,000 ids matched in 0.2 s this way, 6.9 s as an Iceberg
    ``In`` filter (``io.existing_keys``). The last read has no upper bound (today, and anything
    a receiver's clock put later)."""
    if event_ids.is_empty():
        return _NO_IDS
    wanted, found = event_ids.cast(pl.String).implode(), []
    for start, end in _days_from(received_from, now or datetime.now(UTC)):
        row_filter = GreaterThanOrEqual("received_at", start.isoformat())
        if end is not None:
            row_filter = And(row_filter, LessThan("received_at", end.isoformat()))
        day = pl.from_arrow(io.scan(bronze, row_filter, ("event_id",)))
        if day.height:
            found.append(day["event_id"].filter(day["event_id"].is_in(wanted)))
    return pl.concat([_NO_IDS, *found]).unique().rename("event_id")


def _days_from(start: datetime, now: datetime) -> list[tuple[datetime, datetime | None]]:
    """``[start, next midnight)``, each following day, and today open-ended (UTC)."""
    bounds = [start]
    while bounds[-1].date() < now.date():
        bounds.append(datetime.combine(bounds[-1].date() + timedelta(days=1), time.min, UTC))
    return list(zip(bounds, [*bounds[1:], None], strict=True))


def recovered_ids(reconciliation: io.Table, days: Iterable[date]) -> pl.Series:
    """Event ids that runs recorded as sent for events created on ``days`` (UTC)."""
    keys = [d.isoformat() for d in days]  # dates match as ISO text, as Iceberg binds them
    if not keys or reconciliation.current_snapshot() is None:
        return _NO_IDS
    sent = io.scan(reconciliation, In("day", keys), columns=("recovered_event_ids",))
    ids = pl.from_arrow(sent)["recovered_event_ids"].explode().drop_nulls()
    return ids.unique().cast(pl.String).rename("event_id")


def last_reconciliation_per_day(catalog: Catalog, since: date | None = None) -> pl.DataFrame:
    """The row of the latest run (by ``reconciled_at``) for each provider and day, from day
    ``since`` on; empty (with the table's columns) when reconciliation never ran.

    A later run over part of a day replaces an earlier one for that day: its ``window_start`` and
    ``window_end`` say how much of the day it covered."""
    table = queries.existing_table(catalog, GOLD_RECONCILIATION)
    if table is None:
        return pl.DataFrame(schema=GOLD_RECONCILIATION.schema.polars)
    row_filter = GreaterThanOrEqual("day", since.isoformat()) if since else None
    rows = pl.from_arrow(io.scan(table, row_filter=row_filter))
    return (
        rows.sort("reconciled_at")
        .group_by("provider", "day", maintain_order=True)
        .last()
        .select(GOLD_RECONCILIATION.column_names)
        .sort("provider", "day")
    )
