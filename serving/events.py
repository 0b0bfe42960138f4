"""A request as the event the features read: the silver columns of ``ml.features.INPUT_COLUMNS``
that gold would have for the same payment (``ml.online.OnlineEvent``).

The event type is what the endpoint is about: a payment about to be confirmed is scored as
``payment.succeeded`` (as gold scores it once it is), a declined one as ``payment.failed``; the
amount is in major units by the provider's rule for the currency, as silver's ``amount``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ml.features import FAILED, ORDER_ID_PATTERN, SUCCEEDED
from ml.online import OnlineEvent
from serving.schemas import ChurnRequest, FailedPayment, Payment
from settings.names import PROVIDER_STRIPE
from transforms.money import STRIPE

FRAUD_PATH, RETRY_PATH = "/fraud/score", "/retry/strategy"
CHURN_PATH, RECOVERY_PATH = "/churn/predict", "/recovery/recommend"
_ORDER_ID = re.compile(ORDER_ID_PATTERN)


def event_time(created_at: datetime | None) -> datetime:
    """The request's event time in UTC (now when it gives none)."""
    return datetime.now(UTC) if created_at is None else created_at.astimezone(UTC)


def payment_event(payment: Payment, event_type: str, decline_code: str | None = None) -> dict:
    """The silver columns of ``payment`` as an event of ``event_type``."""
    card = payment.card
    return {
        "event_id": payment.event_id,
        "event_type": event_type,
        "merchant_id": payment.merchant_id,
        "customer_id": payment.customer_id,
        "charge_id": payment.charge_id,
        "amount": payment.amount_minor / 10 ** STRIPE.exponents[payment.currency],
        "currency": payment.currency,
        "card_brand": card.brand if card else None,
        "card_last_four": card.last4 if card else None,
        "card_country": card.country if card else None,
        "customer_country": payment.customer_country,
        "decline_code": decline_code,
        "dispute_reason": None,
        "metadata": orjson.dumps({"order_id": payment.order_id}).decode()
        if payment.order_id is not None
        else None,
        "provider_created_at": event_time(payment.created_at),
        "provider": PROVIDER_STRIPE,
    }


def fraud_event(request: Payment) -> OnlineEvent:
    return payment_event(request, SUCCEEDED)


def failed_event(request: FailedPayment) -> OnlineEvent:
    return payment_event(request, FAILED, request.decline_code)


def churn_event(request: ChurnRequest) -> OnlineEvent:
    """The customer at the payment at hand, or at the request's time without one."""
    if request.payment is not None:
        payment = request.payment.model_copy(
            update={
                "customer_id": request.customer_id,
                "customer_country": request.payment.customer_country or request.customer_country,
                "created_at": request.payment.created_at or request.created_at,
            }
        )
        return payment_event(payment, FAILED if request.payment_failed else SUCCEEDED)
    return {
        "event_id": None,
        "event_type": None,
        "customer_id": request.customer_id,
        "customer_country": request.customer_country,
        "provider_created_at": event_time(request.created_at),
    }


def request_body(row: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The JSON body asking ``path`` about a silver event ``row`` (``INPUT_COLUMNS`` and
    ``amount_minor``): what a payment service would send for that payment, for the parity test,
    the demo and the benchmark."""
    card = {
        "brand": row["card_brand"],
        "last4": row["card_last_four"],
        "country": row["card_country"],
    }
    found = _ORDER_ID.search(row["metadata"]) if isinstance(row.get("metadata"), str) else None
    payment = {
        "merchant_id": row["merchant_id"],
        "customer_id": row["customer_id"],
        "amount_minor": row["amount_minor"],
        "currency": row["currency"],
        "card": card if any(v is not None for v in card.values()) else None,
        "customer_country": row["customer_country"],
        "order_id": found.group(1) if found else None,
        "charge_id": row["charge_id"],
        "event_id": row["event_id"],
        "created_at": row["provider_created_at"].isoformat(),
    }
    if path == CHURN_PATH:
        return {
            "customer_id": row["customer_id"],
            "payment": payment,
            "payment_failed": row["event_type"] == FAILED,
        }
    if path in (RETRY_PATH, RECOVERY_PATH):
        return {**payment, "decline_code": row["decline_code"]}
    return payment
