"""Names every layer shares: topics, message headers, the provider, and the error codes.

The receiver (``ingest``) writes them, the transforms and the quality contracts read them; they
live here so that neither has to import the other (``docs/architecture.md``, "Layers").
"""

from __future__ import annotations

# --- topics (Kafka API) ----------------------------------------------------------------------
PAYMENT_INTENT = "webhooks.stripe.payment_intent"
CHARGE = "webhooks.stripe.charge"
REFUND = "webhooks.stripe.refund"
DISPUTE = "webhooks.stripe.dispute"
OTHER = "webhooks.stripe.other"
DLQ = "webhooks.dlq"

#: Topics the receiver writes verified, routable Stripe events to.
EVENT_TOPICS: tuple[str, ...] = (PAYMENT_INTENT, CHARGE, REFUND, DISPUTE, OTHER)
#: Every topic the stack creates and the bronze loader consumes.
ALL_TOPICS: tuple[str, ...] = (*EVENT_TOPICS, DLQ)

# --- message headers (values are UTF-8 bytes) ------------------------------------------------
H_PROVIDER = "provider"
H_EVENT_ID = "event-id"
H_EVENT_TYPE = "event-type"
H_RECEIVED_AT = "received-at"  # ISO 8601 UTC, microseconds
H_REQUEST_ID = "request-id"
H_DLQ_REASON = "dlq-reason"  # only on webhooks.dlq: INVALID_JSON, MISSING_EVENT_ID, ...
H_SOURCE = "source"  # absent for webhooks; "reconciliation" for events recovered from the API

#: ``H_SOURCE`` (and bronze ``source``) of an event recovered from the provider's Events API.
SOURCE_RECONCILIATION = "reconciliation"
#: What a reconciliation run lists: every event, or only those whose webhook delivery failed.
LISTING_ALL = "all"
LISTING_DELIVERY_FAILED = "delivery_failed"
LISTINGS: tuple[str, ...] = (LISTING_ALL, LISTING_DELIVERY_FAILED)

PROVIDER_STRIPE = "stripe"

# --- codes: why a delivery went to the DLQ or to silver.quarantine ---------------------------
INVALID_JSON = "INVALID_JSON"
MISSING_EVENT_ID = "MISSING_EVENT_ID"
MISSING_EVENT_TYPE = "MISSING_EVENT_TYPE"
#: The receiver's DLQ reasons (the same codes silver.quarantine uses for these deliveries).
DLQ_REASONS: tuple[str, ...] = (INVALID_JSON, MISSING_EVENT_ID, MISSING_EVENT_TYPE)

MISSING_DATA_OBJECT = "MISSING_DATA_OBJECT"
MISSING_OBJECT_ID = "MISSING_OBJECT_ID"
INVALID_FIELD_TYPE = "INVALID_FIELD_TYPE"
INVALID_AMOUNT = "INVALID_AMOUNT"
INVALID_AMOUNT_NEGATIVE = "INVALID_AMOUNT_NEGATIVE"
INVALID_AMOUNT_TOO_LARGE = "INVALID_AMOUNT_TOO_LARGE"
INVALID_CURRENCY = "INVALID_CURRENCY"
INVALID_EVENT_TIME = "INVALID_EVENT_TIME"  # created outside the window around received_at
ROW_CONTRACT = "ROW_CONTRACT"
GATE_REJECTED = "GATE_REJECTED"  # an operator quarantined a held batch (or its failing rows)

#: Every code ``silver.quarantine.error_code`` may hold.
ERROR_CODES: tuple[str, ...] = (
    *DLQ_REASONS,
    MISSING_DATA_OBJECT,
    MISSING_OBJECT_ID,
    INVALID_FIELD_TYPE,
    INVALID_AMOUNT,
    INVALID_AMOUNT_NEGATIVE,
    INVALID_AMOUNT_TOO_LARGE,
    INVALID_CURRENCY,
    INVALID_EVENT_TIME,
    ROW_CONTRACT,
    GATE_REJECTED,
)
