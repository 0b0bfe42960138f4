"""Listing the provider's events with the official ``stripe`` library against a stand-in for
Stripe's Events API (``tests/support/stripe_standin.py``, not Stripe): complete windows across
pages, the delivery filter, 429s waited out with backoff, and failures that return nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.stripe_events import (
    EventsNotListed,
    RateLimitPolicy,
    events_client,
    list_events,
    list_params,
)
from lakehouse.supervisor import free_port
from settings import get_settings
from simulator import generate_events
from tests.support.stripe_standin import API_KEY, StripeStandIn, serving

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE, UNTIL = NOW - timedelta(days=2), NOW - timedelta(hours=1)


def simulated(n: int = 260, seed: int = 5) -> list[dict]:
    """Simulator events spread over the two days before now (some outside the window)."""
    start = NOW - timedelta(days=2, hours=3)
    return list(generate_events(n, seed, start=start, mean_gap_s=1500))


def in_window(events: list[dict]) -> list[dict]:
    return [e for e in events if SINCE.timestamp() <= e["created"] < UNTIL.timestamp()]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[dict], StripeStandIn]]:
    """The stand-in serving simulated events, a third of them never delivered; settings point
    the client at it."""
    events = simulated()
    undelivered = {e["id"] for e in events[::3]}
    with serving(events, undelivered) as (url, standin):
        monkeypatch.setenv("LAKEHOUSE_STRIPE_API_KEY", API_KEY)
        monkeypatch.setenv("LAKEHOUSE_STRIPE_API_BASE", url)
        monkeypatch.setenv("LAKEHOUSE_STRIPE_MAX_NETWORK_RETRIES", "0")
        get_settings.cache_clear()
        yield events, standin


def listed(**kwargs) -> list[dict]:
    """Bodies of the events ``list_events`` returns for the window, as dicts."""
    table = list_events(events_client(get_settings()), SINCE, UNTIL, sleep=lambda s: None, **kwargs)
    return [orjson.loads(b) for b in table.column("body").to_pylist()]


def test_every_event_of_the_window_is_listed_once_across_pages(api) -> None:
    events, standin = api
    expected = in_window(events)
    assert len(expected) > 200  # three pages of 100

    bodies = listed()

    assert sorted(b["id"] for b in bodies) == sorted(e["id"] for e in expected)
    assert len(standin.requests) == 3
    first, *later = standin.requests
    assert "starting_after" not in first
    assert [r["starting_after"] for r in later] == [bodies[99]["id"], bodies[199]["id"]]
    assert first["created[gte]"] == str(int(SINCE.timestamp()))
    assert first["created[lt]"] == str(int(UNTIL.timestamp()))
    assert first["limit"] == "100"


def test_a_listed_body_is_the_event_the_provider_created(api) -> None:
    events, _ = api
    by_id = {e["id"]: e for e in events}
    for body in listed():
        assert body == by_id[body["id"]]


def test_failed_deliveries_only_asks_for_them_and_gets_only_them(api) -> None:
    events, standin = api
    undelivered = {e["id"] for e in in_window(events)} & standin.undelivered

    bodies = listed(failed_only=True)

    assert {b["id"] for b in bodies} == undelivered
    assert all(r["delivery_success"] == "false" for r in standin.requests)


def test_types_restrict_the_listing_to_the_endpoint_subscription(api) -> None:
    events, standin = api
    types = ["charge.succeeded", "payment_intent.succeeded"]

    bodies = listed(types=types)

    assert {b["type"] for b in bodies} == set(types)
    assert len(bodies) == sum(e["type"] in types for e in in_window(events))
    assert {standin.requests[0]["types[0]"], standin.requests[0]["types[1]"]} == set(types)


def test_a_rate_limited_page_is_retried_with_backoff_and_the_listing_resumes(api) -> None:
    events, standin = api
    standin.rate_limit(3, after=1)  # the second page is answered 429 three times
    waits: list[float] = []

    table = list_events(
        events_client(get_settings()),
        SINCE,
        UNTIL,
        rate_limit=RateLimitPolicy(retries=5, backoff_s=0.5),
        sleep=waits.append,
    )

    assert table.num_rows == len(in_window(events))
    assert waits == [0.5, 1.0, 2.0]  # exponential backoff
    page_one_last = table.column("event_id")[99].as_py()
    resumed = standin.requests[1:5]  # three refused attempts and the one answered
    assert [r.get("starting_after") for r in resumed] == [page_one_last] * 4


def test_retry_after_is_honoured_when_longer_than_the_backoff(api) -> None:
    _, standin = api
    standin.rate_limit(1, retry_after_s=7)
    waits: list[float] = []

    list_events(events_client(get_settings()), SINCE, UNTIL, sleep=waits.append)

    assert waits == [7.0]


def test_a_persistent_rate_limit_fails_the_listing_and_returns_nothing(api) -> None:
    _, standin = api
    standin.rate_limit(100, after=1)  # one page, then 429 for good
    policy = RateLimitPolicy(retries=3, backoff_s=0.01)

    with pytest.raises(EventsNotListed, match="still rate limited after 3 retries.*HTTP 429"):
        list_events(events_client(get_settings()), SINCE, UNTIL, rate_limit=policy)
    assert len(standin.requests) == 1 + 4


def test_an_unreachable_api_fails_the_listing_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LAKEHOUSE_STRIPE_MAX_NETWORK_RETRIES", "1")
    get_settings.cache_clear()

    with pytest.raises(EventsNotListed, match="APIConnectionError, no HTTP answer"):
        list_events(events_client(get_settings()), SINCE, UNTIL)


def test_a_refused_key_fails_without_showing_the_key(api, monkeypatch) -> None:
    wrong = "rk_test_wrong_key_that_must_not_be_logged"
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_KEY", wrong)
    get_settings.cache_clear()

    with pytest.raises(EventsNotListed, match="AuthenticationError, HTTP 401") as caught:
        list_events(events_client(get_settings()), SINCE, UNTIL)
    assert wrong not in str(caught.value) and "rk_test" not in str(caught.value)
    assert wrong not in repr(get_settings())


def test_a_window_beyond_the_providers_30_days_is_refused_before_any_request(api) -> None:
    _, standin = api
    with pytest.raises(ValueError, match="more than 30 days ago"):
        list_events(events_client(get_settings()), NOW - timedelta(days=31), UNTIL)
    assert standin.requests == []


def test_without_a_key_reconciliation_says_which_setting_is_missing() -> None:
    with pytest.raises(ValueError, match="LAKEHOUSE_STRIPE_API_KEY is not set"):
        events_client(get_settings())


def test_list_params_cover_the_window_in_whole_seconds() -> None:
    since = datetime(2026, 11, 20, 10, 0, 0, 500_000, tzinfo=UTC)
    until = datetime(2026, 11, 21, 10, 0, 0, 1, tzinfo=UTC)
    params = list_params(since, until, failed_only=True, types=["charge.failed"])
    assert params["created"] == {"gte": int(since.timestamp()), "lt": int(until.timestamp()) + 1}
    assert params["delivery_success"] is False and params["types"] == ["charge.failed"]
