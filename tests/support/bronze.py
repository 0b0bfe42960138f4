"""Builders of ``bronze.webhook_events`` rows from webhook bodies, routed like the receiver does
and landed like the bronze loader does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from ingest.messages import build_message
from transforms.schemas import BRONZE_WEBHOOK_EVENTS

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def body_of(event: dict | bytes | str) -> bytes:
    if isinstance(event, dict):
        return orjson.dumps(event)
    return event.encode() if isinstance(event, str) else event


def bronze_row(
    event: dict | bytes | str,
    *,
    offset: int,
    partition: int = 0,
    received_at: datetime | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """One delivery of ``event`` (a dict, or a raw body) as the bronze loader lands it; received
    ``offset`` + 1 seconds after the event's ``created`` (``T0`` for a body without one: not
    JSON, say), unless ``received_at`` says when."""
    body = body_of(event)
    received_at = received_at or _created(body, T0) + timedelta(seconds=offset + 1)
    message = build_message(body, received_at, request_id=f"req-{offset}")
    topic = topic or message.topic
    return {
        "delivery_id": f"{topic}:{partition}:{offset}",
        "provider": "stripe",
        "event_id": message.event_id,
        "event_type": message.event_type,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "message_key": message.key.decode(),
        "payload": body.decode("utf-8", errors="replace"),
        "dlq_reason": message.dlq_reason,
        "request_id": f"req-{offset}",
        "received_at": received_at,
        "ingested_at": received_at + timedelta(seconds=1),
    }


def _created(body: bytes, default: datetime) -> datetime:
    """The body's ``created`` as a UTC time, else ``default``."""
    try:
        created = orjson.loads(body).get("created")
    except (orjson.JSONDecodeError, AttributeError):
        return default
    if isinstance(created, int) and not isinstance(created, bool):
        return datetime.fromtimestamp(created, UTC)
    return default


def just_after_creation(event: dict) -> datetime:
    """When a delivery of ``event`` arrives: one second after the provider created it (for events
    that carry their own time, such as the labelled history)."""
    return datetime.fromtimestamp(event["created"], UTC) + timedelta(seconds=1)


def bronze_frame(
    events: Iterable[dict | bytes | str],
    *,
    first_offset: int = 0,
    received_at: Callable[[dict], datetime] | None = None,
) -> pl.DataFrame:
    """Bronze rows for ``events``, one delivery each, offsets counting up; received as
    ``bronze_row`` says, or at ``received_at(event)``."""
    rows = [
        bronze_row(e, offset=first_offset + i, received_at=received_at(e) if received_at else None)
        for i, e in enumerate(events)
    ]
    return pl.DataFrame(rows, schema=BRONZE_WEBHOOK_EVENTS.polars)
