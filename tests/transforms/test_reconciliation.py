"""Reconciliation's pure part: the window, the class of each listed event, the per-day rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from quality.contracts import GoldReconciliation
from transforms.reconciliation import (
    IN_BRONZE,
    MISSING,
    RECOVERED_EARLIER,
    RunFacts,
    Window,
    classify,
    reconciliation_rows,
)
from transforms.schemas import GOLD_RECONCILIATION

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
COUNTS = ["provider_events", "in_bronze", "recovered_earlier", "recovered", "still_missing"]


def window_of(since=None, until=None) -> Window:
    return Window.of(since, until, now=NOW, lookback=3 * DAY, settle=timedelta(minutes=15))


def test_the_default_window_ends_a_settling_time_ago_and_looks_back_from_there() -> None:
    window = window_of()
    assert window.end == NOW - timedelta(minutes=15)
    assert window.start == window.end - 3 * DAY


def test_dates_and_naive_times_are_utc_and_the_end_is_never_in_the_future() -> None:
    window = window_of(date(2026, 11, 20), datetime(2026, 12, 24, 8, 0))  # noqa: DTZ001
    assert window.start == datetime(2026, 11, 20, tzinfo=UTC)
    assert window.end == NOW


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="is not before"):
        window_of(NOW, NOW - DAY)


def test_the_days_of_a_window_are_the_utc_days_it_touches() -> None:
    window = Window(datetime(2026, 11, 20, 23, 0, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))
    assert window.days == [date(2026, 11, 20), date(2026, 11, 21)]  # the end is excluded


def events(*created: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {"event_id": [f"evt_{i}" for i in range(len(created))], "created_at": list(created)},
        schema={"event_id": pl.String, "created_at": pl.Datetime("us", "UTC")},
    )


def ids(*values: str) -> pl.Series:
    return pl.Series("event_id", list(values), pl.String)


def test_an_event_in_bronze_counts_as_in_bronze_even_if_an_earlier_run_sent_it() -> None:
    listed = events(NOW, NOW, NOW)
    classified = classify(listed, ids("evt_0"), ids("evt_0", "evt_1"))
    assert classified["status"].to_list() == [IN_BRONZE, RECOVERED_EARLIER, MISSING]


def facts(window: Window, dry_run: bool = False) -> RunFacts:
    return RunFacts("run-1", "stripe", "all", window, dry_run, NOW)


def test_rows_count_each_day_of_the_window_and_add_up() -> None:
    window = Window(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))
    d19, d21 = datetime(2026, 11, 19, 5, tzinfo=UTC), datetime(2026, 11, 21, 5, tzinfo=UTC)
    listed = events(d19, d19, d19, d21, d21, d21)
    classified = classify(listed, ids("evt_0", "evt_3"), ids("evt_1"))
    # evt_2, evt_4 and evt_5 are missing; the broker acknowledged evt_5 and evt_2
    rows = reconciliation_rows(classified, ["evt_5", "evt_2"], facts(window))

    assert rows["day"].to_list() == [date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)]
    assert rows.select(COUNTS).rows() == [(3, 1, 1, 1, 0), (0, 0, 0, 0, 0), (3, 1, 0, 1, 1)]
    assert rows["recovered_event_ids"].to_list() == [["evt_2"], [], ["evt_5"]]
    identity = pl.col("in_bronze") + pl.col("recovered_earlier") + pl.col("recovered")
    assert (
        rows.select((identity + pl.col("still_missing")) == pl.col("provider_events"))
        .to_series()
        .all()
    )
    assert rows.columns == GOLD_RECONCILIATION.column_names
    GoldReconciliation.validate(rows)  # the table's row contract


def test_a_dry_run_leaves_every_missing_event_still_missing() -> None:
    window = Window(datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))
    classified = classify(events(NOW - DAY, NOW - DAY), ids(), ids())
    (row,) = reconciliation_rows(classified, [], facts(window, dry_run=True)).iter_rows(named=True)
    assert (row["still_missing"], row["recovered"], row["dry_run"]) == (2, 0, True)
    assert (row["window_start"], row["window_end"]) == (window.start, window.end)
