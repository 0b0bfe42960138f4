"""Events recovered from the provider's API, sent through the same path as webhooks.

Each body becomes the message the receiver would have written for it (``build_message``: same
topic, key, value and headers), plus the header ``source: reconciliation``, with ``received_at``
the moment of recovery. An idempotent producer with ``acks=all`` writes them (the receiver's
``producer_config``) and ``send_recovered`` returns only once every message was acknowledged or
failed: what it reports as acknowledged is on the topics, and the bronze loader will land it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from ingest.messages import OutgoingMessage, build_message
from ingest.producer import producer_config
from settings.names import SOURCE_RECONCILIATION


@dataclass
class Sent:
    """What the broker did with the recovered events: acknowledged ids, failures by id."""

    acknowledged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def recovered_message(body: bytes, received_at: datetime, run_id: str) -> OutgoingMessage:
    """The message of a body recovered by reconciliation run ``run_id``."""
    return build_message(
        body, received_at, request_id=f"reconcile:{run_id}", source=SOURCE_RECONCILIATION
    )


def send_recovered(
    bodies: Iterable[bytes],
    *,
    received_at: datetime,
    run_id: str,
    client_config: dict[str, str],
    timeout_s: float,
) -> Sent:
    """Write every body as a recovered message; wait for each acknowledgement (or failure)."""
    config = {**producer_config(client_config, timeout_s), "client.id": "lakehouse-reconcile"}
    producer, sent = Producer(config), Sent()
    pending: dict[str, None] = {}
    for body in bodies:
        message = recovered_message(body, received_at, run_id)
        event_id = message.event_id or message.key.decode()
        pending[event_id] = None
        _produce(producer, message, partial(_settle, sent, pending, event_id))
    producer.flush(timeout_s + 5)  # librdkafka fails each message by its own deadline before
    for event_id in pending:
        sent.failed[event_id] = "no acknowledgement before the deadline"
    return sent


def _produce(producer: Producer, message: OutgoingMessage, on_delivery) -> None:
    while True:
        try:
            producer.produce(
                message.topic,
                value=message.value,
                key=message.key,
                headers=message.headers,
                on_delivery=on_delivery,
            )
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


def _settle(
    sent: Sent, pending: dict[str, None], event_id: str, err: KafkaError | None, _: Message
) -> None:
    pending.pop(event_id, None)
    if err is None:
        sent.acknowledged.append(event_id)
    else:
        sent.failed[event_id] = err.str()
