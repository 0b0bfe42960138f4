"""Helpers shared by the ingest tests: signing, Stripe-like events, a served receiver, topic tails.

``sign`` is written from Stripe's documented scheme, independently of ``ingest.signature``, so the
tests do not grade the code with its own answers.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import uvicorn
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from fastapi import FastAPI

from lakehouse.supervisor import free_port

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
JSON = "application/json"


def sign(body: bytes, secret: str, t: int | None = None) -> str:
    """A ``Stripe-Signature`` header: ``t=<t>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>``."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def make_event(event_type: str = "payment_intent.succeeded", **overrides: Any) -> dict[str, Any]:
    """A Stripe-like event envelope with a unique id; ``overrides`` replace top-level fields."""
    event: dict[str, Any] = {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": {
                "id": f"pi_{uuid.uuid4().hex[:24]}",
                "object": "payment_intent",
                "amount": 2000,
                "currency": "usd",
                "metadata": {"merchant_id": "merchant_42"},
            }
        },
    }
    event.update(overrides)
    return event


def signed_headers(body: bytes, secret: str = SECRET, **extra: str) -> dict[str, str]:
    """Content type and a valid signature for ``body``."""
    return {"content-type": JSON, "stripe-signature": sign(body, secret), **extra}


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn (uvloop, httptools) in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


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
