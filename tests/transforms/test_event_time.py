"""Event time is a row rule: created outside a window around received_at is INVALID_EVENT_TIME
for that row alone; the rest of the batch goes on."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms.events import to_silver
from transforms.rules import RowLimits

RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def created(at: datetime | None, seed: int = 1) -> dict:
    event = make_stripe_event("payment_intent.succeeded", rng=random.Random(seed), created=RECEIVED)
    if at is None:
        del event["created"]
    else:
        event["created"] = int(at.timestamp())
    return event


def codes(*events: dict, limits: RowLimits | None = None) -> list[str | None]:
    """Per event, in order: its quarantine code, or None when it reached the events."""
    split = to_silver(
        bronze_frame(events, received_at=lambda _: RECEIVED), processed_at=RECEIVED, limits=limits
    )
    by_id = dict(split.quarantine.select("event_id", "error_code").iter_rows())
    return [by_id.get(e.get("id")) for e in events]


@pytest.mark.parametrize(
    ("at", "code"),
    [
        (RECEIVED - timedelta(days=399), None),
        (RECEIVED - timedelta(seconds=1), None),
        (RECEIVED + timedelta(seconds=299), None),  # the provider's clock runs a little ahead
        (datetime(2018, 3, 1, tzinfo=UTC), "INVALID_EVENT_TIME"),
        (RECEIVED - timedelta(days=401), "INVALID_EVENT_TIME"),
        (RECEIVED + timedelta(seconds=301), "INVALID_EVENT_TIME"),
        (RECEIVED + timedelta(days=3), "INVALID_EVENT_TIME"),
        (None, "INVALID_EVENT_TIME"),
    ],
)
def test_created_outside_the_window_around_receipt_is_quarantined(at, code) -> None:
    assert codes(created(at)) == [code]


def test_one_bad_event_time_leaves_the_rest_of_the_batch_alone() -> None:
    good = [created(RECEIVED - timedelta(minutes=i), seed=i) for i in range(50)]
    late, early = (
        created(RECEIVED + timedelta(days=3), 90),
        created(datetime(2018, 1, 1, tzinfo=UTC), 91),
    )
    result = codes(*good[:25], late, *good[25:], early)
    assert result.count("INVALID_EVENT_TIME") == 2 and result.count(None) == 50


def test_the_detail_says_which_way_and_by_how_much() -> None:
    events = [created(RECEIVED + timedelta(days=3)), created(datetime(2018, 1, 1, tzinfo=UTC), 2)]
    split = to_silver(bronze_frame(events, received_at=lambda _: RECEIVED), processed_at=RECEIVED)
    future, past = split.quarantine["error_detail"].to_list()
    assert "is more than 300 s after received_at" in future
    assert "2018-01-01" in past and "is more than 400 days before received_at" in past


def test_the_window_is_configurable() -> None:
    narrow = RowLimits(event_max_age=timedelta(days=30), event_max_future=timedelta(seconds=5))
    month_ago, ahead = RECEIVED - timedelta(days=31), RECEIVED + timedelta(seconds=10)
    assert codes(created(month_ago), created(ahead, 2), limits=narrow) == ["INVALID_EVENT_TIME"] * 2
    assert codes(created(month_ago), created(ahead, 2)) == [None, None]


def test_a_type_not_modelled_is_counted_whatever_its_time() -> None:
    other = make_stripe_event("customer.created", created=datetime(2018, 1, 1, tzinfo=UTC))
    split = to_silver(bronze_frame([other], received_at=lambda _: RECEIVED), processed_at=RECEIVED)
    assert (split.quarantine.height, split.not_modelled.height) == (0, 1)


def test_missing_created_is_not_an_event_time_when_the_type_is_missing_too() -> None:
    event = created(None)
    del event["type"]
    split = to_silver(bronze_frame([event], received_at=lambda _: RECEIVED), processed_at=RECEIVED)
    assert split.quarantine["error_code"].to_list() == ["MISSING_EVENT_TYPE"]
