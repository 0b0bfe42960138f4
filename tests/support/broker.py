"""The broker as the integration tests use it: a tail of the topics, offsets of a consumer
group, bodies delivered as the receiver writes them, bronze batches read to the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from ingest.messages import OutgoingMessage, build_message
from lakehouse.broker import LocalBroker
from settings.names import ALL_TOPICS


class TopicTail:
    """Messages written to ``topics`` after this object was created (the broker is shared)."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
        metadata = self._consumer.list_topics(timeout=10)
        self._start = [
            TopicPartition(topic, p, self._high(topic, p))
            for topic in topics
            for p in metadata.topics[topic].partitions
        ]

    def _high(self, topic: str, partition: int) -> int:
        """The partition's end offset (retried while a just-created topic elects its leader)."""
        deadline = time.monotonic() + 15
        while True:
            try:
                return self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=5
                )[1]
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def written(self) -> int:
        """How many messages were written to the topics since."""
        return sum(self._high(tp.topic, tp.partition) - tp.offset for tp in self._start)

    def collect(
        self, wanted: Callable[[Message], bool], count: int, timeout_s: float = 20.0
    ) -> list[Message]:
        """Read from the start offsets until ``count`` wanted messages arrived (or time ran out)."""
        self._consumer.assign(self._start)
        found: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            msg = self._consumer.poll(0.5)
            if msg is not None and msg.error() is None and wanted(msg):
                found.append(msg)
        return found

    def close(self) -> None:
        self._consumer.close()


def headers_of(msg: Message) -> dict[str, str]:
    """A message's headers as text."""
    return {name: value.decode() for name, value in msg.headers() or []}


def read_rows(reader: Any, expected: int, max_records: int) -> tuple[list[dict], dict]:
    """Bronze rows from ``reader`` (in-process or child) until ``expected`` arrived, in batches of
    at most ``max_records``; and the next offsets the batches reported. Closes the reader."""
    rows: list[dict] = []
    offsets: dict = {}
    try:
        while len(rows) < expected:
            batch = reader.poll_batch(max_records, 10.0)
            assert batch.size, f"only {len(rows)} of {expected} messages arrived"
            rows += batch.rows.to_pylist()
            offsets.update(batch.next_offsets)
    finally:
        reader.close()
    return rows, offsets


def end_offsets_of(bootstrap: str) -> list:
    """The current end offset of every partition of every topic of the stack."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-offsets"})
    try:
        meta = consumer.list_topics(timeout=10)
        return [
            TopicPartition(topic, p, _high(consumer, TopicPartition(topic, p)))
            for topic in ALL_TOPICS
            for p in meta.topics[topic].partitions
        ]
    finally:
        consumer.close()


def _high(consumer, tp, timeout_s: float = 30.0) -> int:
    """High watermark; a partition whose leadership is still settling answers after a moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)[1]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def commit_group_offsets(bootstrap: str, group: str, offsets: list) -> None:
    """Set a consumer group's committed offsets, as an operator's offset reset would."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


@dataclass
class KafkaForTest:
    """The session broker as one test sees it: its own group, started at the topics' end."""

    broker: LocalBroker
    group: str
    start_offsets: list

    def reset_group(self) -> None:
        """Reset the group to where this test started: the same offsets are delivered again."""
        commit_group_offsets(self.broker.bootstrap, self.group, self.start_offsets)


@dataclass
class Deliveries:
    """Writes webhook bodies to the broker exactly as the receiver would."""

    kafka: KafkaForTest

    def send(self, bodies: list[bytes | dict]) -> list[OutgoingMessage]:
        producer = Producer(
            {
                "bootstrap.servers": self.kafka.broker.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        sent = []
        for i, body in enumerate(bodies):
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
            msg = build_message(raw, datetime.now(UTC), f"req_test_{i}")
            producer.produce(msg.topic, key=msg.key, value=msg.value, headers=msg.headers)
            sent.append(msg)
        assert producer.flush(30) == 0, "the broker did not acknowledge every delivery"
        return sent
