"""Reconciliation with the provider as pure Polars: the window, which listed events bronze holds,
and the rows of ``gold.reconciliation`` (one per provider, UTC day of event creation and run).

Every listed event falls in exactly one class, checked in this order:

- ``in_bronze``: bronze holds a delivery of it (a webhook, or an earlier recovery the loader
  landed);
- ``recovered_earlier``: an earlier run sent it and bronze has not landed it yet (not sent again);
- ``missing``: neither; a run sends these, and each ends up ``recovered`` (acknowledged by the
  broker) or ``still_missing`` (a dry run, or the broker refused it).

So ``provider_events = in_bronze + recovered_earlier + recovered + still_missing`` on every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from transforms.schemas import GOLD_RECONCILIATION, conform

IN_BRONZE = "in_bronze"
RECOVERED_EARLIER = "recovered_earlier"
MISSING = "missing"


@dataclass(frozen=True)
class Window:
    """A window of event creation: ``start`` included, ``end`` excluded, both UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a reconciliation window needs timezone-aware bounds")
        if self.start >= self.end:
            raise ValueError(f"the window is empty: {self.start} is not before {self.end}")

    @classmethod
    def of(
        cls,
        since: datetime | date | None,
        until: datetime | date | None,
        *,
        now: datetime,
        lookback: timedelta,
        settle: timedelta,
    ) -> Window:
        """The window from optional bounds (dates and naive times are UTC): ``until`` defaults
        to ``settle`` before ``now`` (a younger event's first delivery may still be in flight)
        and is never after ``now``; ``since`` defaults to ``lookback`` before ``until``."""
        end = min(_utc(until) if until is not None else now - settle, now)
        start = _utc(since) if since is not None else end - lookback
        return cls(start, end)

    @property
    def days(self) -> list[date]:
        """Every UTC day the window touches."""
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def classify(
    events: pl.DataFrame, in_bronze: pl.Series, recovered_earlier: pl.Series
) -> pl.DataFrame:
    """``events`` (``event_id``, ``created_at``, …) with ``status``: ``IN_BRONZE``,
    ``RECOVERED_EARLIER`` or ``MISSING`` (the first that applies)."""
    event_id = pl.col("event_id")
    status = (
        pl.when(event_id.is_in(in_bronze.implode()))
        .then(pl.lit(IN_BRONZE))
        .when(event_id.is_in(recovered_earlier.implode()))
        .then(pl.lit(RECOVERED_EARLIER))
        .otherwise(pl.lit(MISSING))
    )
    return events.with_columns(status.alias("status"))


@dataclass(frozen=True)
class RunFacts:
    """What a run's rows say besides the counts."""

    run_id: str
    provider: str
    listing: str
    window: Window
    dry_run: bool
    reconciled_at: datetime


def reconciliation_rows(
    classified: pl.DataFrame, recovered: Sequence[str], facts: RunFacts
) -> pl.DataFrame:
    """``gold.reconciliation`` rows: one per UTC day of the window, zeros on days the provider
    listed nothing. ``recovered`` are the ids of missing events the broker acknowledged."""
    sent = pl.col("event_id").is_in(pl.Series(list(recovered), dtype=pl.String).implode())
    missing = pl.col("status") == MISSING
    per_day = (
        classified.with_columns(pl.col("created_at").dt.date().alias("day"))
        .group_by("day")
        .agg(
            pl.len().cast(pl.Int64).alias("provider_events"),
            (pl.col("status") == IN_BRONZE).sum().cast(pl.Int64).alias("in_bronze"),
            (pl.col("status") == RECOVERED_EARLIER).sum().cast(pl.Int64).alias("recovered_earlier"),
            (missing & sent).sum().cast(pl.Int64).alias("recovered"),
            (missing & ~sent).sum().cast(pl.Int64).alias("still_missing"),
            pl.col("event_id").filter(missing & sent).sort().alias("recovered_event_ids"),
        )
    )
    days = pl.DataFrame({"day": facts.window.days}, schema={"day": pl.Date})
    counts = ["provider_events", "in_bronze", "recovered_earlier", "recovered", "still_missing"]
    rows = days.join(per_day, on="day", how="left").with_columns(
        *(pl.col(c).fill_null(0) for c in counts),
        pl.col("recovered_event_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        run_id=pl.lit(facts.run_id),
        provider=pl.lit(facts.provider),
        listing=pl.lit(facts.listing),
        window_start=pl.lit(facts.window.start),
        window_end=pl.lit(facts.window.end),
        dry_run=pl.lit(facts.dry_run),
        reconciled_at=pl.lit(facts.reconciled_at),
    )
    return conform(rows.sort("day"), GOLD_RECONCILIATION)


def _utc(moment: datetime | date) -> datetime:
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time.min, UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
