"""Recovered events go to the topics as the receiver writes webhooks, marked as recovered, and
only what the broker acknowledged is reported as sent (real broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest import topics
from ingest.messages import build_message
from ingest.recovery import send_recovered
from lakehouse.supervisor import free_port
from settings import get_settings
from simulator.events import make_stripe_event
from tests.support.broker import TopicTail, headers_of

pytestmark = pytest.mark.integration


def test_recovered_events_are_written_like_webhooks_with_a_source_header(kafka: str) -> None:
    events = [make_stripe_event(t) for t in ("payment_intent.succeeded", "refund.created")]
    bodies = [orjson.dumps(e) for e in events]
    at = datetime.now(UTC)
    tail = TopicTail(kafka, topics.ALL_TOPICS)
    try:
        sent = send_recovered(
            bodies,
            received_at=at,
            run_id="run-1",
            client_config=get_settings().kafka_client_config(),
            timeout_s=10,
        )
        ids = {e["id"] for e in events}
        written = tail.collect(lambda m: headers_of(m).get("event-id") in ids, count=2)
    finally:
        tail.close()

    assert sorted(sent.acknowledged) == sorted(ids) and sent.failed == {}
    for msg in written:
        headers = headers_of(msg)
        webhook = build_message(msg.value(), at, "reconcile:run-1")  # what the receiver writes
        assert (msg.topic(), msg.key()) == (webhook.topic, webhook.key)
        assert headers == {
            **{k: v.decode() for k, v in webhook.headers},
            "source": "reconciliation",
        }


def test_nothing_is_reported_sent_when_no_broker_acknowledges() -> None:
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}"}  # nothing listens there
    body = orjson.dumps(make_stripe_event())

    sent = send_recovered(
        [body], received_at=datetime.now(UTC), run_id="run-2", client_config=config, timeout_s=1
    )

    assert sent.acknowledged == []
    assert list(sent.failed) == [orjson.loads(body)["id"]]
