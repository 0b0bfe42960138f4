"""One silver batch as a whole, as the ``silver_batch`` suite checks it: a one-row summary.

The accounting identity of a batch: every bronze row read is promoted as an event, quarantined,
dropped as a duplicate (in the batch or already in silver) or counted as not modelled — nothing
else. ``unaccounted_rows`` is what is left over (0 when the identity holds). The quarantine share
is only judged on batches of at least ``min_rows`` (one bad delivery alone in a quiet batch says
nothing systematic). A schema change is a column missing, added or retyped against the table's
definition (``transforms.schemas``), written out so the gate's failure says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.schemas import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS, TableSchema


@dataclass(frozen=True)
class BatchCounts:
    """Where the bronze rows of one silver batch went."""

    bronze: int
    events: int
    quarantined: int
    duplicates: int
    not_modelled: int

    @property
    def unaccounted(self) -> int:
        return self.bronze - (self.events + self.quarantined + self.duplicates + self.not_modelled)


def schema_change(frame: pl.DataFrame, table: TableSchema) -> str:
    """What differs between ``frame``'s columns and ``table``'s ("" when nothing does)."""
    have, want = dict(frame.schema), dict(table.polars)
    missing = [name for name in want if name not in have]
    extra = [name for name in have if name not in want]
    retyped = [f"{n} {have[n]} (not {t})" for n, t in want.items() if n in have and have[n] != t]
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (("missing", missing), ("extra", extra), ("retyped", retyped))
        if names
    ]
    return "; ".join(parts)


def silver_batch_summary(
    counts: BatchCounts, bronze: pl.DataFrame, events: pl.DataFrame, min_rows: int
) -> pl.DataFrame:
    """The one-row frame the ``silver_batch`` suite validates."""
    share = counts.quarantined / counts.bronze if counts.bronze >= max(min_rows, 1) else None
    return pl.DataFrame(
        {
            "bronze_rows": [counts.bronze],
            "unaccounted_rows": [counts.unaccounted],
            "quarantine_share": [share],
            "bronze_schema_change": [schema_change(bronze, BRONZE_WEBHOOK_EVENTS)],
            "events_schema_change": [schema_change(events, SILVER_PAYMENT_EVENTS)],
        },
        schema={
            "bronze_rows": pl.Int64,
            "unaccounted_rows": pl.Int64,
            "quarantine_share": pl.Float64,
            "bronze_schema_change": pl.String,
            "events_schema_change": pl.String,
        },
    )
