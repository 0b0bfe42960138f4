"""The bronze loader's reader on the real broker: every message becomes one bronze row, whatever
its headers or bytes hold, offsets follow the messages read, and a rebalance during a poll never
puts a delivery twice into one batch."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from ingest import topics
from ingest.consumer import BatchReader, partition_key
from ingest.messages import build_message
from ingest.recovery import recovered_message
from settings import get_settings
from simulator.events import make_stripe_event
from tests.support.broker import KafkaForTest, read_rows

pytestmark = pytest.mark.integration


def _produce(kafka: KafkaForTest, messages: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": kafka.broker.bootstrap, "acks": "all"})
    for m in messages:
        producer.produce(**m)
    assert producer.flush(30) == 0


def _read_all(expected: int) -> tuple[list[dict], dict]:
    settings = get_settings()
    reader = BatchReader(
        settings.kafka_client_config(),
        settings.consumer_group,
        session_timeout_ms=6000,
    )
    return read_rows(reader, expected, max_records=1000)


def test_receiver_messages_become_bronze_rows_with_their_headers(clean_kafka) -> None:
    received = datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=UTC)
    event = make_stripe_event("payment_intent.succeeded", account="acct_42")
    body = orjson.dumps(event)
    msg = build_message(body, received, "req_1")
    _produce(
        clean_kafka, [{"topic": msg.topic, "key": msg.key, "value": body, "headers": msg.headers}]
    )

    (row,), offsets = _read_all(1)

    assert row["delivery_id"] == f"{msg.topic}:{row['partition']}:{row['offset']}"
    assert (row["provider"], row["event_id"], row["event_type"]) == (
        "stripe",
        event["id"],
        "payment_intent.succeeded",
    )
    assert row["topic"] == topics.PAYMENT_INTENT and row["message_key"] == "acct_42"
    assert row["payload"] == body.decode() and row["request_id"] == "req_1"
    assert row["dlq_reason"] is None and row["source"] is None  # a webhook names no source
    assert row["received_at"] == received
    assert offsets == {partition_key(msg.topic, row["partition"]): row["offset"] + 1}


def test_odd_messages_are_kept_whole_with_fallbacks_instead_of_failing_the_batch(
    clean_kafka,
) -> None:
    good_at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    odd = [
        # not UTF-8: replaced, as bytes.decode("utf-8", "replace") would
        {
            "value": b'{"id": "evt_\xff"}',
            "headers": [("received-at", good_at.isoformat().encode())],
        },
        # no headers at all: provider defaults to stripe, received-at to the load time
        {"value": b"{}"},
        # a received-at that is not a timestamp: the load time stands in
        {"value": b"{}", "headers": [("received-at", b"yesterday"), ("dlq-reason", b"X")]},
        # a tombstone (no value) and no key
        {"value": None},
    ]
    before = datetime.now(UTC)
    _produce(clean_kafka, [{"topic": topics.DLQ, "partition": 0, **m} for m in odd])

    rows, _ = _read_all(len(odd))
    after = datetime.now(UTC) + timedelta(seconds=1)

    rows.sort(key=lambda r: r["offset"])
    assert [r["payload"] for r in rows] == ['{"id": "evt_\ufffd"}', "{}", "{}", ""]
    assert rows[0]["received_at"] == good_at
    for row in rows[1:]:
        assert row["received_at"] == row["ingested_at"]
        assert before <= row["ingested_at"] <= after
    assert {r["provider"] for r in rows} == {"stripe"}
    assert [r["dlq_reason"] for r in rows] == [None, None, "X", None]
    assert [r["message_key"] for r in rows] == [None] * 4


def test_a_recovered_event_lands_in_bronze_marked_as_coming_from_reconciliation(
    clean_kafka,
) -> None:
    event = make_stripe_event("charge.succeeded")
    msg = recovered_message(orjson.dumps(event), datetime.now(UTC), "run-7")
    _produce(
        clean_kafka,
        [{"topic": msg.topic, "key": msg.key, "value": msg.value, "headers": msg.headers}],
    )

    (row,), _ = _read_all(1)

    assert (row["event_id"], row["topic"]) == (event["id"], topics.CHARGE)
    assert row["source"] == "reconciliation" and row["request_id"] == "reconcile:run-7"


def _keep_producing(kafka: KafkaForTest, stop: threading.Event) -> None:
    """Receiver messages into the payment-intent topic, all its partitions, until ``stop``."""
    producer = Producer({"bootstrap.servers": kafka.broker.bootstrap, "linger.ms": 5})
    n = 0
    while not stop.is_set():
        body = orjson.dumps(make_stripe_event("payment_intent.succeeded"))
        msg = build_message(body, datetime.now(UTC), f"req_{n}")
        producer.produce(msg.topic, key=msg.key, value=body, headers=msg.headers)
        producer.poll(0)
        n += 1
        if n % 20 == 0:
            time.sleep(0.01)
    assert producer.flush(30) == 0


def test_a_rebalance_during_a_poll_starts_the_batch_over_with_each_delivery_once(
    clean_kafka,
) -> None:
    settings = get_settings()
    member = lambda: BatchReader(  # noqa: E731
        settings.kafka_client_config(), settings.consumer_group, session_timeout_ms=6000
    )
    stop = threading.Event()
    producing = threading.Thread(target=_keep_producing, args=(clean_kafka, stop))
    producing.start()
    first, second = member(), None
    try:
        first.poll_batch(100, 5.0, {})  # joined: the group's partitions are all the first's
        owned_alone = first.owned()

        def join() -> None:
            nonlocal second
            time.sleep(1.0)
            second = member()
            second.poll_batch(100, 8.0, {})  # joining rebalances the group

        joining = threading.Thread(target=join)
        joining.start()
        batch = first.poll_batch(10**7, 10.0, {})  # messages keep coming: polls the whole 10 s
        joining.join()
    finally:
        stop.set()
        producing.join()
        first.close()
        if second is not None:
            second.close()

    assert first.owned() < owned_alone, "no rebalance happened during the poll"
    ids = batch.rows.column("delivery_id").to_pylist()
    assert len(ids) == len(set(ids)), "a delivery is twice in one batch"
    for key, end in batch.next_offsets.items():
        topic, part = key.rsplit(":", 1)
        offsets = sorted(
            o
            for t, p, o in zip(
                batch.rows["topic"].to_pylist(),
                batch.rows["partition"].to_pylist(),
                batch.rows["offset"].to_pylist(),
                strict=True,
            )
            if (t, p) == (topic, int(part))
        )
        assert offsets == list(range(batch.start_offsets[key], end)), key
