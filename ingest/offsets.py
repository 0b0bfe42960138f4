"""Broker offsets per topic-partition, and consumer lag: the one place both are worked out.

A position is keyed ``"topic:partition"`` (``PartitionKey``) everywhere: in the reader, in the
offsets bronze records in its snapshot summaries (``warehouse.watermarks``) and in the consumer
group. ``lag_per_topic`` is the one formula for lag; the reader uses it with the offsets it has
handed over, ``lakehouse status`` with the offsets bronze recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, TopicPartition

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
                tp = TopicPartition(topic, p)
                ends[partition_key(topic, p)] = consumer.get_watermark_offsets(
                    tp, timeout=timeout_s
                )[1]
        return ends
    finally:
        consumer.close()
