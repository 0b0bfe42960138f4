"""From a verified webhook body to the broker message: topic, key, value and headers.

Shared by the receiver and by the simulator's direct-to-topic writer so both produce exactly the
same messages. The value is the body bytes unchanged. Bodies that cannot be routed (not JSON, no
``id``, no ``type``) go to ``webhooks.dlq`` with the reason in a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from ingest import topics
from settings.names import INVALID_JSON, MISSING_EVENT_ID, MISSING_EVENT_TYPE, PROVIDER_STRIPE


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for the broker."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str | None
    event_type: str | None
    dlq_reason: str | None = None


def _non_empty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def build_message(
    body: bytes,
    received_at: datetime,
    request_id: str,
    provider: str = PROVIDER_STRIPE,
    source: str | None = None,
) -> OutgoingMessage:
    """Route one verified body; never raises for bad content (that is what the DLQ is for).

    ``source`` marks a body that did not arrive as a webhook (``SOURCE_RECONCILIATION``: recovered
    from the provider's API) in the ``source`` header; webhooks carry none."""
    headers = [
        (topics.H_PROVIDER, provider.encode()),
        (topics.H_RECEIVED_AT, received_at.isoformat(timespec="microseconds").encode()),
        (topics.H_REQUEST_ID, request_id.encode()),
    ]
    if source is not None:
        headers.append((topics.H_SOURCE, source.encode()))
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        return _dlq(body, headers, request_id, INVALID_JSON, None, None)
    event_id = _non_empty_str(event.get("id"))
    event_type = _non_empty_str(event.get("type"))
    if event_id is None:
        return _dlq(body, headers, request_id, MISSING_EVENT_ID, None, event_type)
    if event_type is None:
        return _dlq(body, headers, request_id, MISSING_EVENT_TYPE, event_id, None)
    headers += [(topics.H_EVENT_ID, event_id.encode()), (topics.H_EVENT_TYPE, event_type.encode())]
    return OutgoingMessage(
        topic=topics.route(event_type),
        key=topics.message_key(event).encode(),
        value=body,
        headers=headers,
        event_id=event_id,
        event_type=event_type,
    )


def _dlq(
    body: bytes,
    headers: list[tuple[str, bytes]],
    request_id: str,
    reason: str,
    event_id: str | None,
    event_type: str | None,
) -> OutgoingMessage:
    extra = [(topics.H_DLQ_REASON, reason.encode())]
    if event_id:
        extra.append((topics.H_EVENT_ID, event_id.encode()))
    if event_type:
        extra.append((topics.H_EVENT_TYPE, event_type.encode()))
    return OutgoingMessage(
        topic=topics.DLQ,
        key=(event_id or request_id).encode(),
        value=body,
        headers=headers + extra,
        event_id=event_id,
        event_type=event_type,
        dlq_reason=reason,
    )
