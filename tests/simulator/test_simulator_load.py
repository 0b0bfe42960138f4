"""``lakehouse simulate load`` writes exactly N deliveries straight to the right topics."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from ingest import topics
from ingest.messages import build_message
from lakehouse.broker import LocalBroker
from lakehouse.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()


def _read_everything(bootstrap: str) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-load",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        meta = consumer.list_topics(timeout=10)
        parts = [
            TopicPartition(t, p, 0) for t in topics.ALL_TOPICS for p in meta.topics[t].partitions
        ]
        total = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
        consumer.assign(parts)
        messages = []
        while len(messages) < total:
            batch = consumer.consume(1000, timeout=5)
            assert batch, f"read {len(messages)} of {total}"
            messages += [m for m in batch if m.error() is None]
        return messages
    finally:
        consumer.close()


def test_load_writes_n_deliveries_as_the_receiver_would_with_fresh_ids_per_cycle(
    fresh_broker: Callable[[], LocalBroker],
) -> None:
    broker = fresh_broker()
    count = 2_500
    result = runner.invoke(
        app,
        [
            "simulate",
            "load",
            "--count",
            str(count),
            "--seed",
            "3",
            "--malformed-fraction",
            "0.05",
            "--pool-size",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{count:,} messages in" in result.output

    messages = _read_everything(broker.bootstrap)
    assert len(messages) == count
    per_topic = Counter(m.topic() for m in messages)
    for topic, n in per_topic.items():
        assert f"{n:,}" in result.output, topic
    assert per_topic[topics.DLQ] > 0 and per_topic[topics.PAYMENT_INTENT] > count / 3

    event_ids = []
    for msg in messages:
        headers = dict(msg.headers())
        expected = build_message(msg.value(), _received_at(headers), headers["request-id"].decode())
        assert (msg.topic(), msg.key(), msg.headers()) == (
            expected.topic,
            expected.key,
            expected.headers,
        )
        if msg.topic() != topics.DLQ:
            event_ids.append(orjson.loads(msg.value())["id"])
    assert len(set(event_ids)) == len(event_ids)


def _received_at(headers: dict[str, bytes]):
    return datetime.fromisoformat(headers[topics.H_RECEIVED_AT].decode())


def test_load_then_microbatch_holds_no_batch_and_dates_no_event_in_the_future(
    fresh_broker: Callable[[], LocalBroker],
) -> None:
    fresh_broker()
    loaded = runner.invoke(
        app, ["simulate", "load", "--count", "3000", "--seed", "4", "--malformed-fraction", "0.01"]
    )
    assert loaded.exit_code == 0, loaded.output

    drained = runner.invoke(app, ["run", "microbatch", "--max-seconds", "1.0"])

    assert drained.exit_code == 0, drained.output  # no gate held a batch
    totals = json.loads(drained.output[drained.output.index("{") : drained.output.rindex("}") + 1])
    assert totals["rows_in"]["bronze"] == 3000
    assert "INVALID_EVENT_TIME" not in totals["quarantined_by_code"]
    assert set(totals["gates"].values()) == {True}
