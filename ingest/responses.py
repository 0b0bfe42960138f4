"""What the receiver answers (one pydantic model per kind of answer, also the OpenAPI schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebhookAccepted(BaseModel):
    """A delivery the broker acknowledged (routed to its topic, or to the DLQ with a reason)."""

    received: bool = Field(True, description="always true: the event is durably stored")
    event_id: str | None = Field(description="Stripe event id, when the body carried one")
    topic: str = Field(description="topic the delivery was written to")
    request_id: str = Field(description="id of this request (also in the X-Request-ID header)")
    dlq_reason: str | None = Field(
        None, description="why it went to webhooks.dlq (INVALID_JSON, MISSING_EVENT_ID, …)"
    )


class ErrorDetail(BaseModel):
    """A machine-readable code and a sentence for people."""

    code: str = Field(description="e.g. missing_signature, payload_too_large, broker_unavailable")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body of the receiver; nothing was stored."""

    error: ErrorDetail
    request_id: str | None = None


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"] = Field(description="ok, or unavailable")
    dependency: str | None = Field(None, description="the dependency that is down (broker)")
    detail: str | None = Field(None, description="why the receiver is not ready, in our words")
