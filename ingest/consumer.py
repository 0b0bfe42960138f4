"""Read broker messages in batches for the bronze loader, each read from where bronze stands.

The no-loss protocol (``docs/architecture.md``): the loader appends a batch to bronze in one
Iceberg commit whose snapshot summary records the next offset of every topic-partition it
consumed, and only then commits those offsets to the consumer group. Each poll carries the
offsets bronze recorded (``expected``): the reader seeks every partition it owns there whenever it
stands elsewhere (a batch read but never committed, a retried task, a rebalance), so whatever
failed, the next batch starts exactly where bronze stopped. A partition bronze never recorded
starts where the group's assignment started it (the group's committed offset, else the first).

A batch's rows are ``bronze.webhook_events`` rows, conformed to its one definition
(``transforms.schemas``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ingest import topics
from ingest.messages import PROVIDER_STRIPE
from ingest.offsets import PartitionKey, lag_per_topic, partition_key, split_key
from transforms.schemas import BRONZE_WEBHOOK_EVENTS

log = logging.getLogger(__name__)

#: Where a partition is read from when nothing says otherwise: its first offset (librdkafka's
#: logical offset; every real offset is at least 0).
BEGINNING = OFFSET_BEGINNING


@dataclass
class Batch:
    """Messages of one bronze batch, as Arrow columns (one row per delivery), and where it was
    read: ``start_offsets``, the offset each partition owned while it was read was read from
    (``BEGINNING``: its first), ``next_offsets``, the offset after the last row of each
    partition it has rows of."""

    rows: pa.Table
    next_offsets: dict[PartitionKey, int] = field(default_factory=dict)
    start_offsets: dict[PartitionKey, int] = field(default_factory=dict)

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


def _group_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> dict[str, int]:
    """The group's committed offsets of ``partitions`` (negative: none), asked a few times (a
    coordinator still loading after a broker restart answers late). Still unknown: the
    partitions are left out, and start from their first offset unless bronze recorded them; an
    assignment must not fail (the client would assign them behind this reader's back)."""
    for attempt in range(3):
        try:
            found = consumer.committed(partitions, timeout=10)
            return {partition_key(tp.topic, tp.partition): tp.offset for tp in found}
        except KafkaException as exc:
            log.warning("the group's committed offsets are unknown (attempt %d): %s", attempt, exc)
            time.sleep(1)
    return {}


class BatchReader:
    """A consumer-group member that yields bronze batches, each read from where bronze stands.

    ``poll_batch(…, expected)`` first seeks every owned partition that does not stand at its
    expected offset; a batch records where it was read from, so one read ahead can be checked
    against the next poll's expectation (``starts_at``) before it is handed over. A rebalance
    during a poll starts the batch over from the new assignment: no delivery is twice in one
    batch. Offsets go to the group only for partitions still owned, after bronze recorded them;
    they only matter for partitions bronze never recorded."""

    def __init__(
        self,
        client_config: Mapping[str, str],
        group_id: str,
        topic_names: tuple[str, ...] = topics.ALL_TOPICS,
        session_timeout_ms: int = 10_000,
        instance_id: str | None = None,
    ) -> None:
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
        self._consumer.subscribe(
            list(topic_names), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self.assigned: list[TopicPartition] | None = None  # None: waiting for an assignment
        self._expected: dict[PartitionKey, int] = {}  # bronze's offsets, as the last poll said
        self._group_start: dict[PartitionKey, int] = {}  # where the assignment started each
        self._sought: dict[PartitionKey, int] = {}  # where each partition was last set to read
        self._generation = 0  # assignments and revocations so far
        self._assignment_timeout_s = session_timeout_ms / 1000 * 3 + 10
        self._stopping = threading.Event()

    def _want(self, key: PartitionKey) -> int:
        """Where the next batch of ``key`` must start: bronze's offset, else the group's start."""
        return self._expected.get(key, self._group_start.get(key, BEGINNING))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for key, offset in _group_offsets(consumer, partitions).items():
            self._group_start[key] = offset if offset >= 0 else BEGINNING
        for tp in partitions:
            key = partition_key(tp.topic, tp.partition)
            tp.offset = self._sought[key] = self._want(key)
        self.assigned = partitions
        self._generation += 1
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away (or lost): forget them; the poll in progress starts over."""
        lost = {partition_key(tp.topic, tp.partition) for tp in partitions}
        kept = [
            tp for tp in self.assigned or () if partition_key(tp.topic, tp.partition) not in lost
        ]
        self.assigned = kept or None  # eager rebalancing takes all: wait for the next assignment
        for key in lost:
            self._sought.pop(key, None)
            self._group_start.pop(key, None)
        self._generation += 1  # confluent-kafka unassigns them after this callback

    def owned(self) -> set[PartitionKey]:
        """The partitions this member owns now."""
        return {partition_key(tp.topic, tp.partition) for tp in self.assigned or ()}

    def _positions(self) -> dict[PartitionKey, int]:
        """Where the next message of each owned partition comes from: the consumer's position
        (after the last message returned), or where the partition was last set to read."""
        positions = {}
        for tp in self._consumer.position(self.assigned) if self.assigned else ():
            key = partition_key(tp.topic, tp.partition)
            positions[key] = tp.offset if tp.offset >= 0 else self._sought.get(key, BEGINNING)
        return positions

    def _reposition(self) -> None:
        """Seek every owned partition that does not stand where its next batch must start."""
        for key, at in self._positions().items():
            want = self._want(key)
            if at != want:
                self._consumer.seek(TopicPartition(*split_key(key), want))
                self._sought[key] = want

    def starts_at(self, batch: Batch, expected: Mapping[PartitionKey, int]) -> bool:
        """Whether ``batch`` was read from exactly where each partition owned now must start,
        by ``expected`` (bronze's offsets): a batch read ahead may be handed over only then."""
        self._expected = dict(expected)
        return batch.start_offsets == {key: self._want(key) for key in self.owned()}

    def _wait_for_assignment(self, max_records: int) -> tuple[list, dict[PartitionKey, int]]:
        """Consume until the group assigns partitions. The messages read meanwhile, and where
        they were read from, when the assignment came in one step (they start at its offsets,
        the expected ones); otherwise none, and the partitions are sought back."""
        generation = self._generation
        deadline = time.monotonic() + self._assignment_timeout_s
        messages: list = []
        while self.assigned is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the consumer group assigned no partitions in time: is the "
                    "broker reachable and are the topics created?"
                )
            messages = _checked(self._consumer.consume(min(1000, max_records), timeout=0.5))
        if self._generation == generation + 1:  # one assignment, its offsets set on_assign
            return messages, {key: self._sought[key] for key in self.owned()}
        self._reposition()
        return [], self._positions()

    def poll_batch(
        self, max_records: int, max_seconds: float, expected: Mapping[PartitionKey, int] | None
    ) -> Batch:
        """Up to ``max_records`` messages or ``max_seconds``, whichever comes first, read from
        ``expected`` (bronze's offsets; None: on from where the last batch ended).

        Each chunk ``consume`` returns is turned into Arrow at once, while librdkafka fetches the
        next in its own threads: conversion overlaps the fetch instead of following it."""
        if expected is not None:
            self._expected = dict(expected)
        if self.assigned is None:  # first poll, or a rebalance: wait for our partitions
            first, starts = self._wait_for_assignment(max_records)
        else:
            if expected is not None:
                self._reposition()
            first, starts = [], self._positions()
        return self._read(max_records, max_seconds, first, starts)

    def _read(
        self, max_records: int, max_seconds: float, first: list, starts: dict[PartitionKey, int]
    ) -> Batch:
        generation = self._generation
        parts: list[pa.Table] = []
        next_offsets: dict[PartitionKey, int] = {}
        count = 0

        def take(messages: list) -> None:
            nonlocal count
            if messages:
                parts.append(_columns(messages))
                for msg in messages:
                    next_offsets[partition_key(msg.topic(), msg.partition())] = msg.offset() + 1
                count += len(messages)

        take(first)
        deadline = time.monotonic() + max_seconds
        while count < max_records and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = self._consumer.consume(
                min(10_000, max_records - count), timeout=min(remaining, 0.5)
            )
            if self._generation != generation:  # a rebalance: start over from the new owners'
                self._reposition()
                generation, starts, count = self._generation, self._positions(), 0
                parts, next_offsets = [], {}
                continue
            if not got and count:
                break  # the topics are drained for now: do not wait out the deadline
            take(_checked(got))
        rows = pa.concat_tables(parts) if parts else _columns([])
        return Batch(_bronze_rows(rows, datetime.now(UTC)), next_offsets, starts)

    def commit(self, next_offsets: Mapping[PartitionKey, int]) -> None:
        """Commit offsets of partitions still owned to the group (after bronze recorded them).

        A failure is logged, not raised: bronze's recorded offsets, not the group's, decide where
        every partition bronze has recorded is read from."""
        owned = self.owned()
        tps = [TopicPartition(*split_key(k), o) for k, o in next_offsets.items() if k in owned]
        if not tps:
            return
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            log.warning("consumer group commit failed (bronze has the offsets): %s", exc)

    def lag(self, handed_over: Mapping[PartitionKey, int] | None = None) -> dict[str, int]:
        """Messages not yet consumed, per topic (end offset minus position); with
        ``handed_over`` (next offset per partition of the batches passed on), messages not yet
        passed on: a batch read ahead still counts as behind."""
        ends: dict[PartitionKey, int] = {}
        positions = {**self._positions(), **(handed_over or {})}
        for tp in self.assigned or ():
            key = partition_key(tp.topic, tp.partition)
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched from this partition yet: ask the broker
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            ends[key] = high
            if positions.get(key, BEGINNING) < 0:  # read from the first offset: none read yet
                positions[key] = max(low, 0)
        return lag_per_topic(ends, positions)

    def stop(self) -> None:
        """Make a ``poll_batch`` in progress (in another thread) return what it has."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        self._consumer.close()
