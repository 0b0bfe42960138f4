"""What the receiver's OpenAPI document says about each route: every status it answers, with its
content type and headers, and the shape of the ``Stripe-Signature`` header.

The webhook route is a ``DirectRoute`` (no parameter solving), so its parameters and body are
declared here by hand; ``tests/ingest/test_openapi.py`` runs schemathesis against the served
receiver to hold the document to what the code answers.
"""

from __future__ import annotations

from typing import Any

from ingest.responses import ErrorResponse, Health

#: ``t=<unix time>,v1=<64 hex>``, with more signatures (``v1`` during a secret rotation, Stripe's
#: test ``v0``) allowed after it, as Stripe sends it.
SIGNATURE_PATTERN = r"^t=[0-9]{1,12}(,v[0-9]=[0-9a-f]{64})+$"

_REQUEST_ID = {
    "X-Request-ID": {
        "description": "id of this request: the caller's X-Request-ID if it sent a valid one",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    **_REQUEST_ID,
}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    return {
        "model": ErrorResponse,
        "description": description,
        "headers": _RETRY_AFTER if retry else _REQUEST_ID,
    }


WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "stored: the broker acknowledged the write", "headers": _REQUEST_ID},
    400: _error(
        "the Stripe-Signature header is missing, malformed or does not match, the body is not "
        "UTF-8, the JSON nests too deep, or the client disconnected; nothing was stored"
    ),
    408: _error("the body did not arrive within the read timeout; nothing was stored"),
    413: _error("the body is over the size limit; nothing was stored"),
    415: _error("the content type is not application/json (UTF-8); nothing was stored"),
    500: _error("unexpected error; nothing was stored, retry", retry=False),
    503: _error(
        "the broker did not acknowledge in time, or too many webhooks are in flight; nothing "
        "was stored, retry after Retry-After seconds",
        retry=True,
    ),
}

WEBHOOK_OPENAPI_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
            "description": "t=<unix time>,v1=<hex HMAC-SHA256 of '{t}.{body}' with the endpoint "
            "secret>; several v1 entries during a secret rotation",
            "example": "t=1733011200,v1=" + "0" * 64,
        },
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 128},
            "description": "the caller's request id, echoed back (one is made otherwise)",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "the Stripe event, stored byte for byte",
    },
}

WEBHOOK_DESCRIPTION = (
    "Verifies the `Stripe-Signature` header, writes the body byte for byte to the topic of its "
    "event type (or to `webhooks.dlq` when it has no id, no type or is not JSON) and answers 200 "
    "only once the broker acknowledged the write; 503 with `Retry-After` when it did not in time "
    "or when too many webhooks are in flight. Nothing is stored for any 4xx."
)

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the broker answers", "headers": _REQUEST_ID},
    503: {
        "model": Health,
        "description": "a dependency is down: `dependency` names it",
        "headers": _REQUEST_ID,
    },
}

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "headers": _REQUEST_ID,
    }
}
