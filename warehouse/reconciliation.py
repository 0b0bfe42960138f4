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
``window.start - tolerance`` to today (at most the 30 days Stripe lists, plus one), and only the
files whose statistics can hold one of the ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import GreaterThanOrEqual, In

from warehouse import io, queries
from warehouse.tables import GOLD_RECONCILIATION

_NO_IDS = pl.Series("event_id", [], pl.String)


def event_ids_in_bronze(
    bronze: io.Table, event_ids: pl.Series, received_from: datetime
) -> pl.Series:
    """The ``event_ids`` of which bronze holds a delivery received at ``received_from`` or later
    (see the module docstring for why that bound is safe)."""
    if event_ids.is_empty():
        return _NO_IDS
    within = GreaterThanOrEqual("received_at", received_from.isoformat())
    found = io.existing_keys(bronze, "event_id", event_ids.to_arrow(), within=within)
    return pl.from_arrow(found).cast(pl.String).rename("event_id")


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
