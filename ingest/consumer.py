"""Read broker messages in batches for the bronze loader, positioned by what bronze recorded.

The no-loss protocol (DESIGN.md): the loader appends a batch to bronze in one Iceberg commit whose
snapshot summary records the next offset of every topic-partition it consumed, and only then
commits those offsets to the consumer group. On assignment this reader seeks every partition to the
larger of the bronze-recorded and group-committed offsets, so a crash between the two commits
neither loses nor duplicates a delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ingest import topics
from ingest.messages import PROVIDER_STRIPE

PartitionKey = str  # "topic:partition"


def partition_key(topic: str, partition: int) -> PartitionKey:
    return f"{topic}:{partition}"


@dataclass
class Batch:
    """Messages of one bronze batch, as Arrow columns (one row per delivery)."""

    rows: pa.Table
    next_offsets: dict[PartitionKey, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.rows.num_rows


def _header_map(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in headers or () if v is not None}


def _parse_ts(text: str | None, fallback: datetime) -> datetime:
    if not text:
        return fallback
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return fallback


def messages_to_arrow(messages: list, ingested_at: datetime) -> pa.Table:
    """Bronze rows (without ingested_at fixed later) from confluent_kafka messages."""
    cols: dict[str, list] = {
        k: []
        for k in (
            "delivery_id",
            "provider",
            "event_id",
            "event_type",
            "topic",
            "partition",
            "offset",
            "message_key",
            "payload",
            "dlq_reason",
            "request_id",
            "received_at",
        )
    }
    for msg in messages:
        h = _header_map(msg.headers())
        topic, part, off = msg.topic(), msg.partition(), msg.offset()
        key = msg.key()
        cols["delivery_id"].append(f"{topic}:{part}:{off}")
        cols["provider"].append(h.get(topics.H_PROVIDER, PROVIDER_STRIPE))
        cols["event_id"].append(h.get(topics.H_EVENT_ID))
        cols["event_type"].append(h.get(topics.H_EVENT_TYPE))
        cols["topic"].append(topic)
        cols["partition"].append(part)
        cols["offset"].append(off)
        cols["message_key"].append(key.decode("utf-8", "replace") if key is not None else None)
        cols["payload"].append((msg.value() or b"").decode("utf-8", "replace"))
        cols["dlq_reason"].append(h.get(topics.H_DLQ_REASON))
        cols["request_id"].append(h.get(topics.H_REQUEST_ID))
        cols["received_at"].append(_parse_ts(h.get(topics.H_RECEIVED_AT), ingested_at))
    ts = pa.timestamp("us", tz="UTC")
    arrays = {
        **{
            k: pa.array(v, pa.string())
            for k, v in cols.items()
            if k not in ("partition", "offset", "received_at")
        },
        "partition": pa.array(cols["partition"], pa.int32()),
        "offset": pa.array(cols["offset"], pa.int64()),
        "received_at": pa.array(cols["received_at"], ts),
    }
    arrays["ingested_at"] = pa.array([ingested_at] * len(messages), ts)
    return pa.table(arrays)


#: Not errors of the data: end of a partition, a topic still being created after a reset.
_TRANSIENT = frozenset({KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART})


def _checked(messages: list) -> list:
    """The messages without errors; a real broker error stops the batch (nothing is committed)."""
    ok = []
    for msg in messages:
        err = msg.error()
        if err is None:
            ok.append(msg)
        elif err.code() not in _TRANSIENT:
            raise RuntimeError(f"broker error while consuming: {err}")
    return ok


class BatchReader:
    """A consumer-group member that yields bronze batches and commits offsets after bronze does."""

    def __init__(
        self,
        client_config: Mapping[str, str],
        group_id: str,
        recorded_offsets: Callable[[], Mapping[PartitionKey, int]],
        topic_names: tuple[str, ...] = topics.ALL_TOPICS,
        session_timeout_ms: int = 10_000,
        instance_id: str | None = None,
    ) -> None:
        self._recorded_offsets = recorded_offsets
        static = {"group.instance.id": instance_id} if instance_id else {}
        self._consumer = Consumer(
            {
                **client_config,
                **static,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(session_timeout_ms // 5, 500),
                "log_level": "3",
            }
        )
        self._consumer.subscribe(list(topic_names), on_assign=self._on_assign)
        self.assigned: list[TopicPartition] | None = None
        self._start: dict[PartitionKey, int] = {}  # offset each partition was assigned at
        self._assignment_timeout_s = session_timeout_ms / 1000 * 3 + 10

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        recorded = self._recorded_offsets()
        committed = {
            partition_key(tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(partitions, timeout=10)
        }
        for tp in partitions:
            key = partition_key(tp.topic, tp.partition)
            best = max(recorded.get(key, -1), committed.get(key, -1))
            tp.offset = best if best >= 0 else OFFSET_BEGINNING
            self._start[key] = best
        self.assigned = partitions
        consumer.assign(partitions)

    def _wait_for_assignment(self) -> list:
        deadline = time.monotonic() + self._assignment_timeout_s
        while self.assigned is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the consumer group assigned no partitions in time: is the "
                    "broker reachable and are the topics created?"
                )
            got = self._consumer.consume(1000, timeout=0.5)
            if got:
                return _checked(got)
        return []

    def poll_batch(self, max_records: int, max_seconds: float) -> Batch:
        """Up to ``max_records`` messages or ``max_seconds``, whichever comes first."""
        messages: list = []
        if self.assigned is None:  # first poll: wait until the group gave us our partitions
            messages += self._wait_for_assignment()
        deadline = time.monotonic() + max_seconds
        while len(messages) < max_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = self._consumer.consume(
                min(10_000, max_records - len(messages)), timeout=min(remaining, 0.5)
            )
            if not got and messages:
                break  # the topics are drained for now: do not wait out the deadline
            messages += _checked(got)
        next_offsets: dict[PartitionKey, int] = {}
        for msg in messages:
            next_offsets[partition_key(msg.topic(), msg.partition())] = msg.offset() + 1
        return Batch(messages_to_arrow(messages, datetime.now(UTC)), next_offsets)

    def commit(self, next_offsets: Mapping[PartitionKey, int]) -> None:
        """Commit offsets to the group (after bronze committed them)."""
        if not next_offsets:
            return
        tps = []
        for key, offset in next_offsets.items():
            topic, part = key.rsplit(":", 1)
            tps.append(TopicPartition(topic, int(part), offset))
        self._consumer.commit(offsets=tps, asynchronous=False)

    def lag(self) -> dict[str, int]:
        """Messages not yet consumed, per topic (end offset minus position)."""
        lag: dict[str, int] = {}
        for tp in self._consumer.position(self.assigned) if self.assigned else ():
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched from this partition yet: ask the broker
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            # no message consumed from it yet: the position is where the assignment started
            position = (
                tp.offset
                if tp.offset >= 0
                else self._start.get(partition_key(tp.topic, tp.partition), -1)
            )
            behind = high - (position if position >= 0 else max(low, 0))
            lag[tp.topic] = lag.get(tp.topic, 0) + max(behind, 0)
        return lag

    def close(self) -> None:
        self._consumer.close()
