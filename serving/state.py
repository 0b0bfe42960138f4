"""What the scoring API serves from, kept fresh in a background thread: the champions (MLflow
aliases, ``ml.registry.load_champions``) and the online features' index over silver's recent
rows (``ml.online.OnlineIndex``).

The micro-batch keeps silver fresh; this process follows it as gold does: one read of the last
``HORIZON`` of silver at start, then, whenever silver's snapshot moves, only the rows the new
snapshots appended (``warehouse.online.appended_since``), merged, trimmed to the horizon and
indexed again; a snapshot that rewrote rows (compaction, a backfill) means one full read. Rows
are the ones gold scores with (``transforms.merchant_daily.for_gold``: live events unless
``LAKEHOUSE_GOLD_INCLUDE_TEST_MODE``). A request is answered from one ``Served`` value, swapped
whole by the refresher, so it never sees a champion or an index half replaced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from ml import features, registry
from ml.online import OnlineIndex
from ml.scoring import servable
from settings import Settings
from transforms.merchant_daily import for_gold
from warehouse import online
from warehouse import tables as T
from warehouse.catalog import get_catalog
from warehouse.io import Table
from warehouse.queries import CREATED, existing_table

log = logging.getLogger("serving.state")

#: How much silver the index holds: the history features need (``features.HISTORY``) before
#: the newest event, plus a day for requests about events a little older than the newest.
HORIZON = features.HISTORY + timedelta(days=1)
_COLUMNS = (*features.INPUT_COLUMNS, "livemode")


@dataclass(frozen=True)
class Served:
    """One consistent view: champions, the index and the silver rows it was built from."""

    champions: Mapping[str, registry.Champion | None]
    index: OnlineIndex
    history: pl.DataFrame
    snapshot_id: int | None = None
    covered_from: datetime | None = None  # features are complete for events from here on
    refreshed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str | None = None  # the last refresh's failure, in our words (details in the log)


def empty() -> Served:
    """Nothing loaded yet: no champion, no history."""
    history = pl.DataFrame(schema=features.INPUT_COLUMNS)
    return Served({}, OnlineIndex.build(history), history)


class Live:
    """The current ``Served`` and the thread that refreshes it every
    ``scoring_refresh_seconds``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.served = empty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> Served:
        """Reload champions whose alias moved and the silver rows appended since; on failure
        keep serving what was loaded and record the error."""
        try:
            champions = servable(registry.load_champions(settings=self.settings))
            self.served = self._with_history(self.served, champions)
        except Exception as exc:  # noqa: BLE001 - a refresh failure must not stop serving
            log.warning("refresh failed", exc_info=True)
            self.served = _replace(self.served, error=f"refresh failed: {type(exc).__name__}")
        return self.served

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scoring-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.scoring_refresh_seconds):
            self.refresh()

    def _with_history(self, served: Served, champions: Mapping) -> Served:
        silver = existing_table(get_catalog(self.settings), T.SILVER_PAYMENT_EVENTS)
        if silver is None:
            return _replace(served, champions=champions, error=None)
        snapshot = online.current_snapshot_id(silver)
        if snapshot == served.snapshot_id:
            return _replace(served, champions=champions, error=None)
        history, covered_from = self._merged(silver, served)
        return Served(champions, OnlineIndex.build(history), history, snapshot, covered_from)

    def _merged(self, silver: Table, served: Served) -> tuple[pl.DataFrame, datetime | None]:
        """The silver rows of the ``HORIZON`` before the newest event (the previous ones and
        what was appended since, or a full read), and from when features are complete (None:
        every silver row is held)."""
        new = None
        if served.snapshot_id is not None:
            new = online.appended_since(silver, served.snapshot_id, _COLUMNS)
        if new is None:
            rows, _, trimmed = online.recent_rows(silver, HORIZON, _COLUMNS)
            rows = self._live(rows)
        else:
            rows = pl.concat([served.history, self._live(new[0])], how="vertical_relaxed")
            trimmed = served.covered_from is not None
        rows = rows.unique("event_id", keep="first", maintain_order=True)
        created = pl.col(CREATED)
        newest = rows.select(created.max()).item()
        if newest is None:
            return rows, None
        start = newest - HORIZON
        trimmed = trimmed or rows.select(created.min()).item() < start
        return rows.filter(created >= start), start + features.HISTORY if trimmed else None

    def _live(self, rows: pl.DataFrame) -> pl.DataFrame:
        rows = for_gold(rows, self.settings.gold_include_test_mode).drop("livemode", strict=False)
        return features.select_inputs(rows)


def _replace(served: Served, **changes: object) -> Served:
    return Served(**{**served.__dict__, "refreshed_at": datetime.now(UTC), **changes})
