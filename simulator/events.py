"""Stripe-like objects and events (API version 2024-06-20), deterministic given a ``random.Random``.

Three levels, each usable on its own:

- **parties**: ``new_customer``, ``new_card``, ``new_payment`` draw a customer, a card and one
  payment attempt (ids, amount in minor units) from an rng;
- **objects**: ``payment_intent_object``, ``charge_object``, ``refund_object``, ``dispute_object``,
  ``customer_object``, ``invoice_object`` build ``data.object`` with Stripe's field names from
  explicit arguments (no randomness: the same arguments give the same object);
- **events**: ``envelope`` wraps an object in Stripe's event envelope; ``make_stripe_event`` builds
  one event of any type with random defaults and keyword overrides (see its docstring).

Amounts are integers in the currency's smallest unit, as Stripe sends them (JPY and KRW have no
minor unit, KWD has three decimals). Timestamps are unix seconds taken from timezone-aware
datetimes; naive datetimes are refused.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from simulator import other_objects as other
from simulator import payment_objects as pay
from simulator.parties import (
    Card,
    Customer,
    Payment,
    new_card,
    new_customer,
    new_id,
    new_payment,
    unix,
    weighted,
)
from simulator.reference import (
    API_VERSION,
    ASYNC_METHOD,
    DECLINE_WEIGHTS,
    DISPUTE_REASONS,
    MERCHANTS,
    Merchant,
)

#: Event types whose ``request`` is null: Stripe emits them on its own, not in an API call.
AUTOMATIC_TYPES = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.closed",
        "refund.updated",
        "charge.refund.updated",
        "invoice.paid",
        "payment_intent.processing",
    }
)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Pass as an override value to remove the key (``make_stripe_event(id=MISSING)``).
MISSING: Any = _Missing()


def envelope(
    event_type: str,
    obj: dict,
    *,
    created: datetime,
    rng: random.Random,
    account: str | None = None,
    previous_attributes: dict | None = None,
    event_id: str | None = None,
    request: dict | None = None,
    pending_webhooks: int = 1,
    api_version: str = API_VERSION,
    livemode: bool = True,
) -> dict:
    """Stripe's event envelope around ``obj``. ``account`` is set for Connect merchants only;
    ``request`` defaults to a fresh API request (``req_…`` and an idempotency key) or, for types
    Stripe emits on its own (``AUTOMATIC_TYPES``), to nulls. The simulator stands in for a live
    account: ``livemode`` is true unless asked (the object's ``livemode`` follows it)."""
    event: dict[str, Any] = {"id": event_id or new_id("evt", rng), "object": "event"}
    if account:
        event["account"] = account
    if "livemode" in obj:
        obj["livemode"] = livemode
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event.update(
        api_version=api_version,
        created=unix(created),
        data=data,
        livemode=livemode,
        pending_webhooks=pending_webhooks,
        request=request if request is not None else new_request(rng, event_type),
        type=event_type,
    )
    return event


def new_request(rng: random.Random, event_type: str | None = None) -> dict[str, str | None]:
    """The ``request`` hash of an event: an API request id and idempotency key, or nulls."""
    if event_type in AUTOMATIC_TYPES:
        return {"id": None, "idempotency_key": None}
    key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {"id": new_id("req", rng, 14), "idempotency_key": key}


def encode(event: Any, *, pretty: bool = False) -> bytes:
    """The webhook body of an event (orjson; ``pretty`` indents like Stripe's deliveries)."""
    return orjson.dumps(event, option=orjson.OPT_INDENT_2 if pretty else 0)


_ENVELOPE_KEYS = frozenset(
    {
        "id",
        "object",
        "api_version",
        "livemode",
        "pending_webhooks",
        "request",
        "account",
        "type",
        "data",
    }
)


def make_stripe_event(
    event_type: str = "payment_intent.succeeded",
    *,
    rng: random.Random | None = None,
    created: datetime | None = None,
    merchant: Merchant | None = None,
    card: Card | None = None,
    decline_code: str | None = None,
    **overrides: Any,
) -> dict:
    """One complete Stripe event of ``event_type`` with random but consistent defaults.

    Supported: every ``payment_intent.*``, ``charge.*`` (incl. ``charge.refund.updated`` and
    ``charge.dispute.*``) and ``refund.*`` type the topics route, ``customer.created`` and
    ``invoice.paid``; any other type gets a minimal object named after its prefix.

    ``rng`` makes it deterministic (``random.Random(7)``); ``created`` (timezone-aware, default
    now) stamps the event and its object. ``merchant`` (default: one of ``MERCHANTS``), ``card``
    and ``decline_code`` (failed types; default drawn from real codes) choose the parties.

    Overrides, by key:

    - envelope keys ``id``, ``account``, ``api_version``, ``livemode``, ``pending_webhooks``,
      ``request``, ``type``, ``object`` (``"event"``), ``data`` (all of it) replace those of the
      envelope (``account=None`` drops it, as for non-Connect merchants);
    - ``previous_attributes`` sets ``data.previous_attributes``;
    - every other key replaces that field of ``data.object``; ``amount``, ``currency`` and
      ``customer`` (an id) are also used to build it, so ``amount_received``, the charge and the
      payment method agree (``make_stripe_event(amount=1500, currency="jpy")``).

    ``livemode`` (default true) is set on the envelope and the object; ``livemode=False`` makes
    a test-mode event. The value ``MISSING`` removes a key: ``make_stripe_event(id=MISSING)``,
    ``make_stripe_event(metadata={"merchant_id": "m_1"}, account=None)``.
    """
    rng = rng or random.Random()
    created = created or datetime.now(UTC)
    merchant = merchant or rng.choice(MERCHANTS)
    payment = _payment_for(rng, merchant, card, created, overrides)
    obj, previous = objects_for(event_type, payment, rng, created, decline_code)
    livemode = overrides.pop("livemode", True)
    event = envelope(
        event_type,
        obj,
        created=created,
        rng=rng,
        account=merchant.account,
        previous_attributes=previous,
        livemode=livemode if isinstance(livemode, bool) else True,
    )
    if not isinstance(livemode, bool):  # a malformed value, set as given
        overrides["livemode"] = livemode
    for key, value in overrides.items():
        if key == "previous_attributes":
            _set(event["data"], key, value)
        else:
            _set(event if key in _ENVELOPE_KEYS else obj, key, value)
    return event


def _set(target: dict, key: str, value: Any) -> None:
    if value is MISSING or (key == "account" and value is None):
        target.pop(key, None)
    else:
        target[key] = value


def _payment_for(
    rng: random.Random, merchant: Merchant, card: Card | None, created: datetime, overrides: dict
) -> Payment:
    customer_id = overrides.get("customer")
    customer = new_customer(rng, merchant.country)
    if isinstance(customer_id, str):
        customer = Customer(customer_id, customer.name, customer.email, customer.country)
    elif "customer" in overrides:
        customer = None
    card = card or new_card(rng, customer.country if customer else merchant.country, created)
    amount, currency = overrides.get("amount"), overrides.get("currency")
    amount = None if amount is MISSING else amount  # removed afterwards; build with a default
    return new_payment(
        rng,
        merchant,
        customer,
        card,
        created,
        amount=amount,
        currency=currency if isinstance(currency, str) else None,
    )


def objects_for(
    event_type: str,
    payment: Payment,
    rng: random.Random,
    created: datetime,
    decline_code: str | None = None,
) -> tuple[dict, dict | None]:
    """``data.object`` and ``data.previous_attributes`` of one event of ``event_type`` about
    ``payment``; ids of further objects (refund, dispute, invoice) are drawn from ``rng``."""
    decline = decline_code or weighted(rng, DECLINE_WEIGHTS)
    risk = min(99, int(rng.expovariate(1 / 22)))
    match event_type:
        case "payment_intent.created":
            return pay.payment_intent_object(payment, status="requires_payment_method"), None
        case "payment_intent.processing":
            method = ASYNC_METHOD.get(payment.currency, "card")
            payment = dataclasses.replace(payment, payment_method_type=method)
            return pay.payment_intent_object(payment, status="processing"), None
        case "payment_intent.succeeded":
            return pay.payment_intent_object(payment), None
        case "payment_intent.payment_failed":
            status = "requires_payment_method"
            return pay.payment_intent_object(payment, status=status, decline=decline), None
        case "payment_intent.canceled":
            obj = pay.payment_intent_object(
                payment, status="canceled", canceled_at=created, cancellation_reason="abandoned"
            )
            return obj, None
        case "charge.succeeded":
            return pay.charge_object(payment, risk_score=risk), None
        case "charge.failed":
            return pay.charge_object(
                payment, status="failed", decline=decline, risk_score=risk
            ), None
        case "charge.captured":
            previous = {"amount_captured": 0, "captured": False}
            return pay.charge_object(payment, risk_score=risk), previous
        case "charge.refunded":
            obj = pay.charge_object(payment, risk_score=risk, amount_refunded=payment.amount)
            return obj, {"amount_refunded": 0, "refunded": False}
        case "refund.created" | "refund.updated" | "charge.refund.updated":
            obj = other.refund_object(payment, refund_id=new_id("re", rng), created=created)
            return obj, None if event_type == "refund.created" else {"status": "pending"}
        case "charge.dispute.created" | "charge.dispute.closed":
            closed = event_type == "charge.dispute.closed"
            obj = other.dispute_object(
                payment,
                dispute_id=new_id("dp", rng),
                created=created,
                reason=weighted(rng, DISPUTE_REASONS),
                status="lost" if closed else "needs_response",
            )
            return obj, {"status": "under_review"} if closed else None
        case "customer.created":
            customer = payment.customer or new_customer(rng)
            return other.customer_object(customer, created, payment.merchant), None
        case "invoice.paid":
            invoice_id, subscription_id = new_id("in", rng), new_id("sub", rng, 14)
            return other.invoice_object(payment, invoice_id, subscription_id), None
        case _:
            return other.generic_object(event_type, new_id("obj", rng), created), None
