"""Write simulated deliveries straight to the topics, bypassing HTTP: bulk loads and benchmarks.

Every message is the one the receiver would write for the same body: ``build_message`` decides
topic, key and headers. Two entry points:

- ``write_bodies(bodies, client_config)``: any bodies, one ``build_message`` each;
- ``load(count, seed, client_config)``: millions of events fast. It generates a pool of bodies
  once, builds each pooled message once with placeholders where a delivery differs (the ids of
  events, intents, charges, refunds, disputes and requests, the request id, received-at), then
  produces ``count`` messages by cycling through the pool with fresh ids per cycle. Customers,
  cards and merchants recur across cycles, as they would; timestamps repeat the pool's timeline.

Both produce with acks=all and an idempotent producer in a tight loop, poll periodically, and
flush at the end; the report counts messages written per topic and failed deliveries.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from ingest import topics
from ingest.messages import build_message
from simulator.stream import DEFAULT_START, generate_payloads

Progress = Callable[[int], None]

#: Ids unique per delivery; customers (cus_), cards (pm_), subscriptions, accounts recur.
_UNIQUE_ID = re.compile(rb'"(?:evt|pi|ch|re|dp|txn|req|in)_[A-Za-z0-9]{8,}')
_TAG = b"~~~~"  # replaced by a per-cycle tag; '~' never occurs in generated bodies
_REQUEST = "~request~"  # replaced by the delivery's request id
_REQUEST_B = _REQUEST.encode()
_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class DirectReport:
    """What a direct write did: messages acknowledged per topic, failures, time taken."""

    by_topic: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def written(self) -> int:
        """Messages the broker acknowledged."""
        return sum(self.by_topic.values())

    @property
    def rate(self) -> float:
        """Acknowledged messages per second, flush included."""
        return self.written / self.elapsed_s if self.elapsed_s else 0.0


def producer_config(client_config: dict[str, str]) -> dict:
    """A throughput-oriented producer with the receiver's guarantees (acks=all, idempotent)."""
    return {
        **client_config,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.report.only.error": True,
    }


class _Writer:
    """A producer loop with backpressure, periodic polls and per-topic counts."""

    def __init__(self, client_config: dict[str, str], progress: Progress | None, every: int):
        self.report = DirectReport()
        self.producer = Producer({**producer_config(client_config), "on_delivery": self._failed})
        self.progress, self.every, self.count = progress, every, 0
        self.started = time.perf_counter()

    def _failed(self, err: object, msg: object) -> None:
        if err is not None:
            self.report.failed[msg.topic()] += 1  # type: ignore[attr-defined]
            if len(self.report.errors) < 10:
                self.report.errors.append(str(err))

    def write(self, messages: Iterable[tuple[str, bytes, bytes, list]]) -> None:
        """Produce every ``(topic, key, value, headers)``; a full local queue waits for room."""
        produce, poll, by_topic = self.producer.produce, self.producer.poll, self.report.by_topic
        progress, every, count = self.progress, self.every, self.count
        for topic, key, value, headers in messages:
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:  # local queue full: let librdkafka drain it
                    poll(0.05)
            by_topic[topic] += 1
            count += 1
            if count & 1023 == 0:
                poll(0)
                if progress and count % every < 1024:
                    progress(count)
        self.count = count

    def close(self, timeout_s: float = 60.0) -> DirectReport:
        """Flush, count what never arrived as failed, release the producer; the report."""
        undelivered = self.producer.flush(timeout_s)
        if undelivered:
            self.report.errors.append(f"{undelivered} messages not delivered within {timeout_s}s")
            self.producer.purge()  # each purged message is reported as failed
            self.producer.flush(0)
        self.producer.close()
        self.report.by_topic -= self.report.failed
        self.report.elapsed_s = time.perf_counter() - self.started
        if self.progress:
            self.progress(self.count)
        return self.report


def write_bodies(
    bodies: Iterable[bytes],
    client_config: dict[str, str],
    *,
    progress: Progress | None = None,
    progress_every: int = 10_000,
    request_prefix: str = "direct",
    flush_timeout_s: float = 60.0,
) -> DirectReport:
    """Write each body as the receiver would (``build_message``), received now. Messages not
    acknowledged within ``flush_timeout_s`` after the last one are counted as failed."""
    writer = _Writer(client_config, progress, progress_every)
    messages = (
        build_message(body, datetime.now(UTC), f"{request_prefix}-{i}")
        for i, body in enumerate(bodies)
    )
    writer.write((m.topic, m.key, m.value, m.headers) for m in messages)
    return writer.close(flush_timeout_s)


@dataclass(frozen=True, slots=True)
class _Template:
    """One pooled message split where deliveries differ: value, key and the headers after
    provider/received-at/request-id are split around the id tag (a key of ``()`` is the
    request id, as for DLQ messages without an event id)."""

    topic: str
    value: tuple[bytes, ...]
    key: tuple[bytes, ...]
    provider: tuple[str, bytes]
    tail: tuple[tuple[str, tuple[bytes, ...]], ...]


_FIRST_HEADERS = (topics.H_PROVIDER, topics.H_RECEIVED_AT, topics.H_REQUEST_ID)


def _template(body: bytes) -> _Template:
    marked = _UNIQUE_ID.sub(lambda m: m.group()[:-4] + _TAG, body)
    msg = build_message(marked, DEFAULT_START, _REQUEST)
    if tuple(name for name, _ in msg.headers[:3]) != _FIRST_HEADERS:
        raise RuntimeError("build_message changed its header layout; update direct._template")
    tail = tuple((name, tuple(value.split(_TAG))) for name, value in msg.headers[3:])
    key = () if msg.key == _REQUEST_B else tuple(msg.key.split(_TAG))
    return _Template(msg.topic, tuple(msg.value.split(_TAG)), key, msg.headers[0], tail)


def _tag(cycle: int) -> bytes:
    digits = bytearray()
    for _ in range(4):
        cycle, digit = divmod(cycle, 62)
        digits.append(_BASE62[digit])
    return bytes(digits)


def bulk_messages(
    count: int,
    seed: int = 0,
    *,
    malformed_fraction: float = 0.0,
    pool_size: int = 5_000,
    received_at: Callable[[], datetime] | None = None,
    request_prefix: str = "direct",
    start: datetime | None = None,
) -> Iterator[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    """``(topic, key, value, headers)`` of ``count`` deliveries, each equal to ``build_message``
    of its final body with its received-at and request id (see the module docstring). Events are
    created from ``start`` on (default: an hour ago) and never after now: the pool stops at the
    moment the load starts (later events of a story — a bank debit settling, a refund's details
    — would only be delivered later), so no delivery is dated after it is received."""
    now = datetime.now(UTC)
    start = start or now - timedelta(hours=1)
    bodies = generate_payloads(
        min(count, pool_size), seed, malformed_fraction=malformed_fraction, start=start, until=now
    )
    pool = [_template(p.body) for p in bodies]
    clock = received_at or (lambda: datetime.now(UTC))
    prefix = f"{request_prefix}-{seed}-".encode()
    received_name, request_name = topics.H_RECEIVED_AT, topics.H_REQUEST_ID
    received, i = b"", 0
    for cycle in itertools.count() if pool else ():
        tag = _tag(cycle)
        for t in pool:
            if i == count:
                return
            if i & 1023 == 0:
                received = clock().isoformat(timespec="microseconds").encode()
            request = b"%s%d" % (prefix, i)
            i += 1
            headers = [t.provider, (received_name, received), (request_name, request)]
            for name, parts in t.tail:
                headers.append((name, tag.join(parts)))
            yield t.topic, tag.join(t.key) if t.key else request, tag.join(t.value), headers


def load(
    count: int,
    seed: int,
    client_config: dict[str, str],
    *,
    malformed_fraction: float = 0.0,
    pool_size: int = 5_000,
    progress: Progress | None = None,
    progress_every: int = 10_000,
    flush_timeout_s: float = 60.0,
) -> DirectReport:
    """Write ``count`` simulated deliveries of the seeded stream straight to the topics
    (``bulk_messages``); unacknowledged after ``flush_timeout_s`` counts as failed."""
    writer = _Writer(client_config, progress, progress_every)
    messages = bulk_messages(
        count, seed, malformed_fraction=malformed_fraction, pool_size=pool_size
    )
    writer.write(messages)
    return writer.close(flush_timeout_s)
