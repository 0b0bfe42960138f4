"""The online feature path (``ml.online``) gives what ``ml.features`` gives: for every event of
the last days of the small history (index over the whole history, strictly-before windows), for
the retry delay features across month, mid-month and Friday boundaries, and for an event the
history has never seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from ml import features as F
from ml.online import OnlineIndex, with_retry_delay
from tests.support.history import small_silver

T = "provider_created_at"


def online_frame(index: OnlineIndex, events: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    rows = [index.features(e) for e in F.select_inputs(events).to_dicts()]
    return pl.DataFrame(rows, schema=like.schema).select(like.columns)


def test_online_features_equal_build_features_for_every_recent_event() -> None:
    silver = small_silver()
    events = silver.filter(pl.col(T) >= silver[T].max() - timedelta(days=2))
    offline = F.build_features(events, silver)
    online = online_frame(OnlineIndex.build(silver), events, offline)
    assert events.height > 500
    assert_frame_equal(online, offline, rel_tol=1e-9, abs_tol=1e-12)


def test_an_event_unknown_to_the_history_gets_the_features_of_an_empty_history() -> None:
    silver = small_silver()
    event = silver.filter(pl.col("event_type") == F.FAILED).tail(1)
    stranger = event.with_columns(
        customer_id=pl.lit("cus_stranger"), merchant_id=pl.lit("acct_stranger")
    )
    offline = F.build_features(stranger, silver)
    online = online_frame(OnlineIndex.build(silver), stranger, offline)
    assert_frame_equal(online, offline, rel_tol=1e-9, abs_tol=1e-12)
    assert online["c_attempts_30d"].item() == 0 and online["c_days_seen"].item() == 0


def test_retry_delay_features_equal_the_polars_ones_across_calendar_boundaries() -> None:
    clocks = [
        datetime(2025, 1, 31, 23, 30, tzinfo=UTC),  # month start within an hour
        datetime(2025, 2, 14, 20, 0, tzinfo=UTC),  # mid-month
        datetime(2025, 2, 27, 9, 15, tzinfo=UTC),  # a Thursday: Friday within a day
        datetime(2024, 12, 31, 1, 0, tzinfo=UTC),  # year end
    ]
    frame = pl.DataFrame({"_clock": clocks})
    for delay in (1, 6, 24, 72, 0.5):
        polars = F.with_retry_delay(frame, delay).drop("_clock").to_dicts()
        online = [
            {k: v for k, v in with_retry_delay({"_clock": c}, delay).items() if k != "_clock"}
            for c in clocks
        ]
        assert online == polars, delay
