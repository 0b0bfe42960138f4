"""Stripe-like webhook deliveries for the receiver's tests: events, bodies, signed headers.

``sign`` is written from Stripe's documented scheme, independently of ``ingest.signature``, so the
tests do not grade the code with its own answers.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson

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
