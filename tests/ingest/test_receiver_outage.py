"""Broker outage: 503 (never 2xx) for what was not written, readiness follows the broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest import topics
from ingest.receiver import create_app
from lakehouse.broker import LocalBroker
from settings import get_settings
from tests.support.broker import TopicTail, headers_of
from tests.support.server import serve
from tests.support.stripe import SECRET, encode, make_event, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 1.5


def _post(client: httpx.Client, event: dict) -> httpx.Response:
    body = encode(event)
    return client.post("/webhooks/stripe", content=body, headers=signed_headers(body))


def _wait_ready(client: httpx.Client, status: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/health/ready").status_code != status:
        assert time.monotonic() < deadline, f"/health/ready never answered {status}"
        time.sleep(0.2)


def _produce_failures(client: httpx.Client) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == "lakehouse_receiver_produce_failures_total"
    )


def test_broker_down_gives_503_and_writes_nothing_and_ready_follows_the_broker(
    fresh_broker: Callable[[], LocalBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = fresh_broker()
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("LAKEHOUSE_RECEIVER_PRODUCE_TIMEOUT_S", str(DEADLINE_S))
    get_settings.cache_clear()
    before, during, after = make_event(), make_event(), make_event()
    tail = TopicTail(broker.bootstrap, (topics.PAYMENT_INTENT,))

    with serve(create_app()) as url, httpx.Client(base_url=url, timeout=15) as client:
        assert _post(client, before).status_code == 200
        _wait_ready(client, 200, timeout_s=5)

        broker.stop()
        started = time.monotonic()
        refused = _post(client, during)
        assert refused.status_code == 503, refused.text
        assert time.monotonic() - started < DEADLINE_S + 1.5
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["code"] == "broker_unavailable"
        assert _produce_failures(client) >= 1
        _wait_ready(client, 503, timeout_s=5)
        down = client.get("/health/ready").json()
        assert down["status"] == "unavailable" and down["dependency"] == "broker"
        assert broker.bootstrap not in str(down) and "rdkafka" not in str(down).lower()

        broker.start()
        _wait_ready(client, 200, timeout_s=30)
        for _ in range(10):  # as a provider would: retry until acknowledged
            if _post(client, after).status_code == 200:
                break
        else:
            pytest.fail("no 2xx after the broker came back")

    ids = {before["id"], during["id"], after["id"]}
    written = {
        headers_of(m)[topics.H_EVENT_ID]
        for m in tail.collect(lambda m: headers_of(m).get(topics.H_EVENT_ID) in ids, count=2)
    }
    tail.close()
    assert written == {before["id"], after["id"]}
