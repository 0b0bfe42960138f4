"""Read broker messages in batches for the bronze loader, positioned by what bronze recorded.

The no-loss protocol (``docs/architecture.md``): the loader appends a batch to bronze in one
Iceberg commit whose snapshot summary records the next offset of every topic-partition it
consumed, and only then commits those offsets to the consumer group. On assignment this reader
seeks every partition to the larger of the bronze-recorded and group-committed offsets, so a crash
between the two commits neither loses nor duplicates a delivery.

A batch's rows are ``bronze.webhook_events`` rows, conformed to its one definition
(``transforms.schemas``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ingest import topics
from ingest.messages import PROVIDER_STRIPE
from ingest.offsets import PartitionKey, lag_per_topic, partition_key, split_key
from transforms.schemas import BRONZE_WEBHOOK_EVENTS


@dataclass
class Batch:
    """Messages of one bronze batch, as Arrow columns (one row per delivery)."""

    rows: pa.Table
    next_offsets: dict[PartitionKey, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.rows.num_rows


def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


_BRONZE = BRONZE_WEBHOOK_EVENTS.arrow
_TS = _BRONZE.field("received_at").type
#: Bronze columns taken from the receiver's headers.
_HEADER_COLUMNS = {
    "provider": topics.H_PROVIDER,
    "event_id": topics.H_EVENT_ID,
    "event_type": topics.H_EVENT_TYPE,
    "dlq_reason": topics.H_DLQ_REASON,
    "request_id": topics.H_REQUEST_ID,
    "received_at": topics.H_RECEIVED_AT,
    "source": topics.H_SOURCE,
}


def _text(values: list) -> pa.Array:
    """UTF-8 text from bytes (None stays null) without a Python decode or an Arrow builder call
    per value: one join of the bytes and their offsets become the array's buffers, and one cast
    checks the UTF-8. Invalid UTF-8 is replaced as ``bytes.decode("utf-8", "replace")`` does
    (per value, only in a chunk that has some)."""
    n = len(values)
    validity, nulls = None, 0
    if None in values:
        present = np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
        nulls = n - int(present.sum())
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
        values = [b"" if v is None else v for v in values]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=n), out=offsets[1:])
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(),
        n,
        [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))],
        null_count=nulls,
    )
    try:
        return raw.cast(pa.large_string()).cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [None if v is None else v.decode("utf-8", "replace") for v in raw.to_pylist()],
            pa.string(),
        )


def _timestamps(text: pa.Array) -> pa.Array:
    """ISO-8601 received-at text as timestamps; null where absent or not ISO-8601."""
    try:
        return pc.cast(text, _TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # some value is not ISO: per row
        return pa.array([_parse_ts(v) for v in text.to_pylist()], _TS)


def _columns(messages: list) -> pa.Table:
    """Bronze rows without ``ingested_at`` (received-at null where its header is unusable): one
    pass over the messages collects the raw fields, Arrow does the rest (no per-message decode,
    header dict comprehension or timestamp parse)."""
    topic = pa.array([m.topic() for m in messages], _BRONZE.field("topic").type)
    part = pa.array([m.partition() for m in messages], _BRONZE.field("partition").type)
    off = pa.array([m.offset() for m in messages], _BRONZE.field("offset").type)
    headers = [dict(m.headers() or ()) for m in messages]
    h = {col: _text([d.get(name) for d in headers]) for col, name in _HEADER_COLUMNS.items()}
    return pa.table(
        {
            "delivery_id": pc.binary_join_element_wise(
                topic, pc.cast(part, pa.string()), pc.cast(off, pa.string()), ":"
            ),
            "provider": pc.fill_null(h["provider"], PROVIDER_STRIPE),
            "event_id": h["event_id"],
            "event_type": h["event_type"],
            "topic": topic,
            "message_key": _text([m.key() for m in messages]),
            "payload": _text([m.value() or b"" for m in messages]),
            "dlq_reason": h["dlq_reason"],
            "request_id": h["request_id"],
            "partition": part,
            "offset": off,
            "received_at": _timestamps(h["received_at"]),
            "source": h["source"],
        }
    )


def _bronze_rows(rows: pa.Table, ingested_at: datetime) -> pa.Table:
    """``rows`` as ``bronze.webhook_events`` (its columns, order, types and nullability):
    ``ingested_at`` added, and standing in for a missing or unusable received-at."""
    at = pa.scalar(ingested_at, _TS)
    received = rows.column("received_at")
    if received.null_count:
        rows = rows.set_column(
            rows.schema.get_field_index("received_at"), "received_at", pc.fill_null(received, at)
        )
    rows = rows.append_column("ingested_at", pa.repeat(at, rows.num_rows))
    return rows.select(_BRONZE.names).cast(_BRONZE)  # raises on a null in a required column


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
        self._stopping = threading.Event()

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

    def _wait_for_assignment(self, max_records: int) -> list:
        deadline = time.monotonic() + self._assignment_timeout_s
        while self.assigned is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the consumer group assigned no partitions in time: is the "
                    "broker reachable and are the topics created?"
                )
            got = self._consumer.consume(min(1000, max_records), timeout=0.5)
            if got:
                return _checked(got)
        return []

    def poll_batch(self, max_records: int, max_seconds: float) -> Batch:
        """Up to ``max_records`` messages or ``max_seconds``, whichever comes first.

        Each chunk ``consume`` returns is turned into Arrow at once, while librdkafka fetches the
        next in its own threads: conversion overlaps the fetch instead of following it."""
        parts: list[pa.Table] = []
        next_offsets: dict[PartitionKey, int] = {}
        count = 0

        def take(messages: list) -> None:
            nonlocal count
            if not messages:
                return
            parts.append(_columns(messages))
            for msg in messages:
                next_offsets[partition_key(msg.topic(), msg.partition())] = msg.offset() + 1
            count += len(messages)

        if self.assigned is None:  # first poll: wait until the group gave us our partitions
            take(self._wait_for_assignment(max_records))
        deadline = time.monotonic() + max_seconds
        while count < max_records and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = self._consumer.consume(
                min(10_000, max_records - count), timeout=min(remaining, 0.5)
            )
            if not got and count:
                break  # the topics are drained for now: do not wait out the deadline
            take(_checked(got))
        rows = pa.concat_tables(parts) if parts else _columns([])
        return Batch(_bronze_rows(rows, datetime.now(UTC)), next_offsets)

    def commit(self, next_offsets: Mapping[PartitionKey, int]) -> None:
        """Commit offsets to the group (after bronze committed them)."""
        if not next_offsets:
            return
        tps = [TopicPartition(*split_key(key), offset) for key, offset in next_offsets.items()]
        self._consumer.commit(offsets=tps, asynchronous=False)

    def lag(self, handed_over: Mapping[PartitionKey, int] | None = None) -> dict[str, int]:
        """Messages not yet consumed, per topic (end offset minus position); with
        ``handed_over`` (next offset per partition of the batches passed on), messages not yet
        passed on: a batch read ahead still counts as behind."""
        ends: dict[PartitionKey, int] = {}
        positions: dict[PartitionKey, int] = {}
        for tp in self._consumer.position(self.assigned) if self.assigned else ():
            key = partition_key(tp.topic, tp.partition)
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched from this partition yet: ask the broker
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            position = tp.offset if handed_over is None else handed_over.get(key, -1)
            # nothing consumed from it yet: the position is where the assignment started
            position = max(position, self._start.get(key, -1))
            ends[key], positions[key] = high, position if position >= 0 else max(low, 0)
        return lag_per_topic(ends, positions)

    def stop(self) -> None:
        """Make a ``poll_batch`` in progress (in another thread) return what it has."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        self._consumer.close()
