"""One asyncio-friendly, idempotent Kafka producer per receiver process.

``confluent_kafka.Producer`` is thread-safe and ``produce()`` only enqueues, so the event loop calls
it directly; a background thread runs ``poll()``, which fires the delivery callbacks, and hands
each poll's reports to the loop with one ``loop.call_soon_threadsafe`` (one wake-up per batch, not
per message), where they resolve the requests' futures. The event loop never waits on the broker.

``acks=all`` with idempotence means an acknowledged message is on every in-sync replica, once.
``message.timeout.ms`` equals the request deadline, so a message that was not acknowledged in time
is failed by librdkafka too instead of being written long after the 503.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.messages import OutgoingMessage

log = logging.getLogger("ingest.producer")

# ProduceError reasons (label values of the produce-failures metric).
TIMEOUT = "timeout"
BROKER_ERROR = "broker_error"
QUEUE_FULL = "queue_full"
FATAL = "fatal"


class ProduceError(RuntimeError):
    """The broker did not acknowledge a message; ``reason`` is one of the reasons above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """Where an acknowledged message was written."""

    topic: str
    partition: int
    offset: int


def producer_config(
    client_config: dict[str, str], deadline_s: float, linger_ms: float = 2.0
) -> dict[str, Any]:
    """librdkafka settings of the receiver's producer: durable, idempotent, bounded in time.

    A short linger lets batches form under load (fewer, larger produce requests: less CPU on both
    sides) while adding little to each webhook's latency; bench/receiver.py measures it.
    """
    timeout_ms = max(int(deadline_s * 1000), 100)
    return {
        **client_config,
        "client.id": "lakehouse-receiver",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": max(timeout_ms, 1000),
        "queue.buffering.max.messages": 200_000,
        "socket.nagle.disable": True,
        "log.connection.close": False,
        "reconnect.backoff.max.ms": 1000,  # back within a second of the broker returning
        "logger": logging.getLogger("ingest.kafka"),
    }


class AsyncProducer:
    """``await produce(message)`` returns once the broker acknowledged it, or raises.

    Create it on the event loop that will await it (the app's lifespan does).
    """

    def __init__(self, config: dict[str, Any], deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._loop = asyncio.get_running_loop()
        self._fatal: str | None = None
        self._reports: list[tuple[asyncio.Future[Delivery], KafkaError | None, Message]] = []
        self._producer = Producer({**config, "error_cb": self._on_error})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    @property
    def fatal_error(self) -> str | None:
        """The fatal error that made this producer unusable, if any."""
        return self._fatal

    async def produce(self, message: OutgoingMessage) -> Delivery:
        """Write one message; raise ``ProduceError`` unless acknowledged within the deadline."""
        if self._fatal is not None:
            raise ProduceError(FATAL, self._fatal)
        future: asyncio.Future[Delivery] = self._loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:  # in the poll thread
            self._reports.append((future, err, msg))

        try:
            self._producer.produce(
                message.topic,
                value=message.value,
                key=message.key,
                headers=message.headers,
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise ProduceError(QUEUE_FULL, "the producer's local queue is full") from exc
        except KafkaException as exc:
            raise ProduceError(BROKER_ERROR, str(exc.args[0])) from exc
        timer = self._loop.call_later(self._deadline_s, _expire, future, self._deadline_s)
        try:
            return await future
        finally:
            timer.cancel()

    def check_broker(self, timeout_s: float) -> None:
        """Fetch cluster metadata (blocking; run it off the event loop); raise if unreachable."""
        if self._fatal is not None:
            raise ProduceError(FATAL, self._fatal)
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise ProduceError(BROKER_ERROR, str(exc.args[0])) from exc
        if not metadata.brokers:
            raise ProduceError(BROKER_ERROR, "the cluster reports no brokers")

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop polling, deliver what is queued (up to ``timeout_s``); return messages left."""
        self._stop.set()
        self._thread.join(timeout=5)
        left = self._producer.flush(timeout_s)
        self._hand_over()
        if left:
            log.warning("producer closed with messages left", extra={"fields": {"left": left}})
        return left

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            self._hand_over()

    def _hand_over(self) -> None:
        """Pass the delivery reports of one poll to the event loop in one wake-up."""
        if self._reports:
            reports, self._reports = self._reports, []
            try:
                self._loop.call_soon_threadsafe(_settle, reports)
            except RuntimeError:  # the loop is closed: nobody awaits these any more
                pass

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.error("fatal producer error", extra={"fields": {"kafka_error": err.str()}})
        else:
            log.warning("producer error", extra={"fields": {"kafka_error": err.str()}})


def _settle(reports: list[tuple[asyncio.Future[Delivery], KafkaError | None, Message]]) -> None:
    """Resolve the requests' futures on the event loop (timed-out ones are already done)."""
    for future, err, msg in reports:
        if future.done():
            continue
        if err is not None:
            future.set_exception(ProduceError(BROKER_ERROR, err.str()))
        else:
            future.set_result(Delivery(msg.topic(), msg.partition(), msg.offset()))


def _expire(future: asyncio.Future[Delivery], deadline_s: float) -> None:
    if not future.done():
        future.set_exception(ProduceError(TIMEOUT, f"no acknowledgement within {deadline_s} s"))
