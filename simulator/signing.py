"""The ``Stripe-Signature`` header of a simulated delivery (scheme v1).

``t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}" with the endpoint secret>``, exactly what
``stripe.WebhookSignature.generate_signature_header`` computes, but over the raw body bytes (so
bodies that are not valid UTF-8 can be signed too).
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: Headers Stripe sends with every delivery, besides the signature.
STRIPE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
}


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The v1 signature: hex HMAC-SHA256 of ``b"{timestamp}." + body`` keyed by ``secret``."""
    payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(
    body: bytes, secret: str, *, timestamp: int | None = None, invalid: bool = False
) -> str:
    """``t=…,v1=…`` for ``body`` signed now (or at ``timestamp``); ``invalid`` signs with a wrong
    secret, as a forger would."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = f"{secret}_forged" if invalid else secret
    return f"t={timestamp},v1={sign(body, key, timestamp)}"


def signed_headers(body: bytes, secret: str, *, invalid: bool = False) -> dict[str, str]:
    """All request headers of one delivery of ``body``, signed now."""
    return {**STRIPE_HEADERS, "Stripe-Signature": signature_header(body, secret, invalid=invalid)}
