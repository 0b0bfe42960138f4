"""The steps behind ``POST /webhooks/stripe``, as plain functions.

Checks run cheapest first and each one refuses with a ``WebhookError``: content type (415), size
(413, from Content-Length and again while reading), time to send the body (408), signature (400),
JSON depth (400). Only then is
the body turned into a message and written; the answer is 2xx only once the broker acknowledged it,
503 when it did not within the deadline. Nothing is written for any 4xx.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request

from ingest import signature
from ingest.messages import OutgoingMessage, build_message
from ingest.producer import AsyncProducer, Delivery, ProduceError
from settings import Settings

#: Seconds a provider is asked to wait after a 503.
RETRY_AFTER_S = 5

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


@dataclass
class WebhookError(Exception):
    """A refused delivery: HTTP status, error code, message, extra response headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    produce_failure: str | None = None  # ProduceError reason, for the 503s


@dataclass(frozen=True)
class Accepted:
    """A delivery the broker acknowledged."""

    message: OutgoingMessage
    delivery: Delivery


def check_content_type(value: str | None) -> None:
    """Only JSON (``application/json``, optionally ``; charset=utf-8``) is accepted."""
    media_type, _, params = (value or "").partition(";")
    charset = "".join(params.split()).lower()
    if media_type.strip().lower() != "application/json" or charset not in (
        "",
        "charset=utf-8",
        'charset="utf-8"',
    ):
        raise WebhookError(
            415, "unsupported_media_type", "Content-Type must be application/json (UTF-8)"
        )


def _too_large(limit: int) -> WebhookError:
    return WebhookError(413, "payload_too_large", f"body is larger than {limit} bytes")


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body, refused as soon as it is known to exceed ``limit`` bytes, or when it takes
    longer than ``timeout_s`` to arrive (a slow sender holds a connection and a request slot)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except ClientDisconnect as exc:
        raise WebhookError(400, "client_disconnected", "the body was not sent completely") from exc
    except TimeoutError as exc:
        raise WebhookError(
            408, "request_timeout", f"the body did not arrive within {timeout_s:g} s"
        ) from exc
    return b"".join(chunks)


def json_depth_exceeds(body: bytes, max_depth: int) -> bool:
    """Whether the body nests arrays/objects deeper than ``max_depth`` (strings are skipped)."""
    if body.count(b"{") + body.count(b"[") <= max_depth:
        return False  # cannot be deeper than it has brackets: the common case, decided in C
    depth = 0
    for token in _BRACKET.findall(_STRING.sub(b'""', body)):
        if token in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def verify_signature(body: bytes, header: str | None, settings: Settings) -> None:
    """400 unless the ``Stripe-Signature`` header holds for one of the configured secrets."""
    try:
        signature.verify(
            body, header, settings.stripe_webhook_secrets, settings.stripe_signature_tolerance_s
        )
    except signature.SignatureError as exc:
        raise WebhookError(400, exc.code, exc.message) from exc


def check_json_depth(body: bytes, max_depth: int) -> None:
    """400 for JSON nested deeper than the limit, even though its signature was verified."""
    if json_depth_exceeds(body, max_depth):
        raise WebhookError(
            400,
            "json_too_deep",
            f"signature verified, but the JSON nests deeper than {max_depth} levels; "
            "nothing was stored",
        )


OVERLOADED = WebhookError(
    503,
    "overloaded",
    "too many webhooks are being handled right now; retry later",
    headers={"Retry-After": str(RETRY_AFTER_S)},
)


async def publish(body: bytes, request_id: str, producer: AsyncProducer) -> Accepted:
    """Route and write one verified body; 503 unless the broker acknowledged it in time."""
    message = build_message(body, received_at=datetime.now(UTC), request_id=request_id)
    try:
        delivery = await producer.produce(message)
    except ProduceError as exc:
        raise WebhookError(
            503,
            "broker_unavailable",
            "the event could not be stored right now; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
            produce_failure=exc.reason,
        ) from exc
    return Accepted(message, delivery)


async def receive(
    request: Request, request_id: str, producer: AsyncProducer, settings: Settings
) -> Accepted:
    """All checks in order, then the write."""
    check_content_type(request.headers.get("content-type"))
    body = await read_body(
        request, settings.receiver_max_body_bytes, settings.receiver_read_timeout_s
    )
    verify_signature(body, request.headers.get("stripe-signature"), settings)
    check_json_depth(body, settings.receiver_max_json_depth)
    return await publish(body, request_id, producer)
