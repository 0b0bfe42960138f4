"""Stripe webhook signatures: the official library decides, we add one rule and name the errors.

A ``Stripe-Signature`` header reads ``t=<unix time>,v1=<hex HMAC-SHA256 of "{t}.{body}">`` and may
carry several ``v1`` entries and other schemes (``v0``), which are ignored. Verification is
delegated to ``stripe.WebhookSignature.verify_header`` (constant-time compare), tried with each
configured secret so that endpoint secrets can be rotated. On top of Stripe's rules a timestamp more
than the tolerance *in the future* is refused too, so a pre-signed delivery cannot be replayed for
longer than the tolerance.

Verdicts equal the official library's for every input (except that extra rule); the differential
test in ``tests/ingest/test_signature.py`` holds us to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from stripe import SignatureVerificationError, WebhookSignature

SCHEME = "v1"

# Error codes, answered in the JSON error body of a 400.
MISSING_SIGNATURE = "missing_signature"
MALFORMED_SIGNATURE = "malformed_signature"
INVALID_BODY_ENCODING = "invalid_body_encoding"
NO_MATCHING_SIGNATURE = "no_matching_signature"
TIMESTAMP_OUTSIDE_TOLERANCE = "timestamp_outside_tolerance"


class SignatureError(ValueError):
    """A delivery whose signature does not hold; ``code`` is one of the codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header, read exactly as Stripe's library does.

    Raises ``SignatureError`` (malformed_signature) where the library cannot read the header.
    """
    items = [item.split("=", 2) for item in header.split(",")]
    try:
        timestamp = int([item[1] for item in items if item[0] == "t"][0])
    except (IndexError, ValueError) as exc:
        raise SignatureError(
            MALFORMED_SIGNATURE, "Stripe-Signature header has no readable timestamp (t=…)"
        ) from exc
    signatures = [item[1] for item in items if item[0] == SCHEME]
    if not signatures:
        raise SignatureError(
            MALFORMED_SIGNATURE, f"Stripe-Signature header has no {SCHEME} signature"
        )
    return timestamp, signatures


def _matches(payload: bytes, header: str, secret: str) -> bool:
    """Whether Stripe's library accepts the signature for this secret (timestamp not checked)."""
    try:
        return bool(WebhookSignature.verify_header(payload, header, secret, tolerance=None))
    except SignatureVerificationError:
        return False


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    tolerance_s: int,
    now: float | None = None,
) -> int:
    """Verify one delivery against any of ``secrets``; return its signed timestamp.

    A tolerance of 0 disables both timestamp checks, as it disables Stripe's. Raises
    ``SignatureError`` with the reason otherwise.
    """
    if not header:
        raise SignatureError(MISSING_SIGNATURE, "Stripe-Signature header is missing")
    timestamp, _ = parse_header(header)
    try:
        matched = any(_matches(payload, header, secret) for secret in secrets)
    except UnicodeDecodeError as exc:  # Stripe's library signs the body as UTF-8 text
        raise SignatureError(
            INVALID_BODY_ENCODING, "body is not UTF-8 text, so it cannot carry a Stripe signature"
        ) from exc
    if not matched:
        raise SignatureError(
            NO_MATCHING_SIGNATURE, "no v1 signature matches the body for any configured secret"
        )
    _check_timestamp(timestamp, tolerance_s, time.time() if now is None else now)
    return timestamp


def _check_timestamp(timestamp: int, tolerance_s: int, now: float) -> None:
    if not tolerance_s:
        return
    if timestamp < now - tolerance_s:
        raise SignatureError(
            TIMESTAMP_OUTSIDE_TOLERANCE, f"signature timestamp is more than {tolerance_s} s old"
        )
    if timestamp > now + tolerance_s:
        raise SignatureError(
            TIMESTAMP_OUTSIDE_TOLERANCE,
            f"signature timestamp is more than {tolerance_s} s in the future",
        )


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid ``Stripe-Signature`` header for ``payload`` (for the simulator, tests, benchmark)."""
    when = int(time.time()) if timestamp is None else timestamp
    return WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp=when
    )
