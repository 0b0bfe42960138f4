"""Broker offsets per topic-partition, and consumer lag: the one place both are worked out.

A position is keyed ``"topic:partition"`` (``PartitionKey``) everywhere: in the reader, in the
offsets bronze records in its snapshot summaries (``warehouse.watermarks``) and in the consumer
group. ``lag_per_topic`` is the one formula for lag; the reader uses it with the offsets it has
handed over, ``lakehouse status`` with the offsets bronze recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

PartitionKey = str  # "topic:partition"


def partition_key(topic: str, partition: int) -> PartitionKey:
    return f"{topic}:{partition}"


def split_key(key: PartitionKey) -> tuple[str, int]:
    """``"topic:partition"`` → ``(topic, partition)``."""
    topic, partition = key.rsplit(":", 1)
    return topic, int(partition)


def per_topic(counts: Mapping[PartitionKey, int]) -> dict[str, int]:
    """Per-partition counts summed per topic (every topic of ``counts`` appears)."""
    totals: dict[str, int] = {}
    for key, count in counts.items():
        topic = split_key(key)[0]
        totals[topic] = totals.get(topic, 0) + count
    return totals


def lag_per_topic(
    end_offsets: Mapping[PartitionKey, int], positions: Mapping[PartitionKey, int]
) -> dict[str, int]:
    """Messages behind, per topic: for each partition of ``end_offsets``, its end offset minus
    the position reached (0 when there is none), never below zero."""
    return per_topic({k: max(end - positions.get(k, 0), 0) for k, end in end_offsets.items()})


def end_offsets(
    client_config: Mapping[str, str], topics: Iterable[str], timeout_s: float = 10.0
) -> dict[PartitionKey, int]:
    """The high watermark (next offset to be written) of every partition of ``topics`` that
    exists; asks the broker (raises when it does not answer)."""
    consumer = Consumer(
        {**client_config, "group.id": "lakehouse-status", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(timeout=timeout_s)
        ends: dict[PartitionKey, int] = {}
        for topic in topics:
            parts = meta.topics.get(topic)
            if parts is None or parts.error is not None:
                continue
            for p in parts.partitions:
                ends[partition_key(topic, p)] = _high(consumer, TopicPartition(topic, p), timeout_s)
        return ends
    finally:
        consumer.close()


def _high(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> int:
    """A partition's high watermark; asked again while its leadership settles (a broker just
    restarted answers "not leader" for a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
        except KafkaException as exc:
            error = exc.args[0]
            settling = error.retriable() or error.code() in _SETTLING
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


#: Answers of a partition whose leadership is settling (a broker restarted, a topic created).
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)
