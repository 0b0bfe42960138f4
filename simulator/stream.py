"""A seeded stream of Stripe events with a realistic mix, and malformed deliveries on demand.

The stream is told as *stories*: one payment's events in Stripe's order (``payment_intent.created``,
``charge.succeeded``, ``payment_intent.succeeded`` sharing one API request), declines, cancels,
bank debits via ``processing``, manual captures, and later refunds and disputes of earlier
successful payments. The same ``seed`` gives the same events, byte for byte.

``generate_events`` yields valid event dicts; ``generate_payloads`` yields request bodies, a
``malformed_fraction`` of them broken in one of ``MALFORMED_KINDS`` (each kind names the rejection
the pipeline should record in ``EXPECTED_REJECTION``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson

from simulator import other_objects as other
from simulator import payment_objects as pay
from simulator.events import encode, envelope, new_request
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
    ASYNC_METHOD,
    DECLINE_WEIGHTS,
    DISPUTE_REASONS,
    MERCHANTS,
    OTHER_COUNTRIES,
    REFUND_REASONS,
    Merchant,
)

#: Where a stream starts when no ``start`` is given (fixed, so a seed alone fixes every byte).
DEFAULT_START = datetime(2024, 7, 1, tzinfo=UTC)

#: Share of each story in the stream (stories emit one to four events each).
DEFAULT_MIX: dict[str, float] = {
    "success": 0.78,
    "failure": 0.10,
    "manual_capture": 0.02,
    "bank_debit": 0.02,
    "canceled": 0.02,
    "refund": 0.03,
    "dispute": 0.01,
    "dispute_closed": 0.005,
    "other": 0.015,
}

#: Ways a delivery can be broken, and the DLQ reason / quarantine code each should produce.
EXPECTED_REJECTION: dict[str, str] = {
    "not_json": "INVALID_JSON",
    "missing_id": "MISSING_EVENT_ID",
    "missing_type": "MISSING_EVENT_TYPE",
    "missing_data_object": "MISSING_DATA_OBJECT",
    "missing_object_id": "MISSING_OBJECT_ID",
    "negative_amount": "INVALID_AMOUNT_NEGATIVE",
    "string_amount": "INVALID_AMOUNT",
    "amount_too_large": "INVALID_AMOUNT_TOO_LARGE",
    "invalid_currency": "INVALID_CURRENCY",
}
MALFORMED_KINDS: tuple[str, ...] = tuple(EXPECTED_REJECTION)
_ENVELOPE_KINDS: tuple[str, ...] = ("not_json", "missing_id", "missing_type")
#: Codes that are not active ISO 4217 payment currencies (X-codes and withdrawn ones).
INVALID_CURRENCIES: tuple[str, ...] = ("xxx", "xts", "xau", "dem", "frf")


@dataclass(frozen=True)
class Population:
    """Who trades in a stream: merchants, and customers each with one or two cards."""

    merchants: tuple[Merchant, ...]
    customers: tuple[Customer, ...]
    cards: dict[str, tuple[Card, ...]]

    @classmethod
    def draw(
        cls,
        rng: random.Random,
        *,
        customers: int = 500,
        merchants: tuple[Merchant, ...] = MERCHANTS,
        start: datetime = DEFAULT_START,
    ) -> Population:
        """Customers mostly from the merchants' countries, some cross-border."""
        people, cards = [], {}
        for _ in range(customers):
            home = rng.choice(merchants).country if rng.random() < 0.85 else None
            person = new_customer(rng, home or rng.choice(OTHER_COUNTRIES))
            people.append(person)
            count = 1 if rng.random() < 0.7 else 2
            cards[person.id] = tuple(new_card(rng, person.country, start) for _ in range(count))
        return cls(tuple(merchants), tuple(people), cards)


@dataclass(frozen=True)
class Payload:
    """One request body; ``malformed`` names how it is broken (None: a valid event)."""

    body: bytes
    malformed: str | None = None


class _Storyteller:
    """Turns a seeded rng into stories of events, advancing a clock between stories."""

    def __init__(self, rng: random.Random, population: Population, start: datetime, gap_s: float):
        self.rng, self.population, self.clock, self.gap_s = rng, population, start, gap_s
        self.settled: deque[Payment] = deque(maxlen=5000)  # refundable, disputable
        self.disputed: deque[tuple[Payment, str, str]] = deque(maxlen=1000)

    def story(self, mix: dict[str, float]) -> list[dict]:
        self.clock += timedelta(seconds=self.rng.expovariate(1 / self.gap_s))
        kind = weighted(self.rng, mix)
        if kind in ("refund", "dispute") and not self.settled:
            kind = "success"
        if kind == "dispute_closed" and not self.disputed:
            kind = "success"
        return getattr(self, f"_{kind}")()

    # --- parties and envelopes -------------------------------------------------------------
    def _payment(self, method: str = "card") -> Payment:
        rng = self.rng
        merchant = rng.choice(self.population.merchants)
        customer = rng.choice(self.population.customers) if rng.random() < 0.92 else None
        if customer is None:
            card = new_card(rng, merchant.country, self.clock)
        else:
            card = rng.choice(self.population.cards[customer.id])
        return new_payment(rng, merchant, customer, card, self.clock, payment_method_type=method)

    def _event(self, event_type: str, obj: dict, payment: Payment, at: float, **kw) -> dict:
        pending = 1 if self.rng.random() < 0.9 else 2
        return envelope(
            event_type,
            obj,
            created=self.clock + timedelta(seconds=at),
            rng=self.rng,
            account=payment.merchant.account,
            pending_webhooks=pending,
            **kw,
        )

    def _risk(self, payment: Payment) -> int:
        return min(99, int(self.rng.expovariate(1 / (18 * payment.merchant.risk))))

    def _take_settled(self) -> Payment:
        """A recent successful payment, refunded or disputed once at most."""
        index = self.rng.randrange(len(self.settled))
        payment = self.settled[index]
        del self.settled[index]
        return payment

    # --- stories -------------------------------------------------------------------------------
    def _success(self) -> list[dict]:
        payment = self._payment()
        request = new_request(self.rng)
        created = pay.payment_intent_object(payment, status="requires_payment_method")
        charge = pay.charge_object(payment, risk_score=self._risk(payment))
        self.settled.append(payment)
        return [
            self._event("payment_intent.created", created, payment, 0, request=request),
            self._event("charge.succeeded", charge, payment, 2, request=request),
            self._event(
                "payment_intent.succeeded",
                pay.payment_intent_object(payment),
                payment,
                2,
                request=request,
            ),
        ]

    def _failure(self) -> list[dict]:
        payment = self._payment()
        decline = weighted(self.rng, DECLINE_WEIGHTS)
        request = new_request(self.rng)
        created = pay.payment_intent_object(payment, status="requires_payment_method")
        charge = pay.charge_object(
            payment, status="failed", decline=decline, risk_score=self._risk(payment)
        )
        failed = pay.payment_intent_object(
            payment, status="requires_payment_method", decline=decline
        )
        return [
            self._event("payment_intent.created", created, payment, 0, request=request),
            self._event("charge.failed", charge, payment, 2, request=request),
            self._event("payment_intent.payment_failed", failed, payment, 2, request=request),
        ]

    def _manual_capture(self) -> list[dict]:
        payment = self._payment()
        risk = self._risk(payment)
        authorized = pay.charge_object(payment, captured=False, risk_score=risk)
        captured = pay.charge_object(payment, risk_score=risk)
        intent = pay.payment_intent_object(payment, capture_method="manual")
        self.settled.append(payment)
        return [
            self._event(
                "payment_intent.created",
                pay.payment_intent_object(
                    payment, status="requires_payment_method", capture_method="manual"
                ),
                payment,
                0,
            ),
            self._event("charge.succeeded", authorized, payment, 2),
            self._event(
                "charge.captured",
                captured,
                payment,
                3600,
                previous_attributes={"amount_captured": 0, "captured": False},
            ),
            self._event("payment_intent.succeeded", intent, payment, 3600),
        ]

    def _bank_debit(self) -> list[dict]:
        payment = self._payment()
        method = ASYNC_METHOD.get(payment.currency)
        if method is None:
            return self._success()
        payment = replace(payment, payment_method_type=method)
        pending = pay.charge_object(payment, status="pending", risk_score=0)
        return [
            self._event(
                "payment_intent.created",
                pay.payment_intent_object(payment, status="requires_payment_method"),
                payment,
                0,
            ),
            self._event(
                "payment_intent.processing",
                pay.payment_intent_object(payment, status="processing"),
                payment,
                1,
            ),
            self._event("charge.pending", pending, payment, 1),
            self._event(
                "charge.succeeded", pay.charge_object(payment, risk_score=0), payment, 3 * 86400
            ),
            self._event(
                "payment_intent.succeeded",
                pay.payment_intent_object(payment),
                payment,
                3 * 86400,
                request={"id": None, "idempotency_key": None},
            ),
        ]

    def _canceled(self) -> list[dict]:
        payment = self._payment()
        reason = self.rng.choice(("abandoned", "requested_by_customer", "duplicate"))
        canceled = pay.payment_intent_object(
            payment, status="canceled", canceled_at=self.clock, cancellation_reason=reason
        )
        return [
            self._event(
                "payment_intent.created",
                pay.payment_intent_object(payment, status="requires_payment_method"),
                payment,
                0,
            ),
            self._event("payment_intent.canceled", canceled, payment, 1800),
        ]

    def _refund(self) -> list[dict]:
        payment = self._take_settled()
        full = self.rng.random() < 0.8 or not isinstance(payment.amount, int)
        amount = payment.amount if full else max(1, payment.amount // 2)
        refund_id, reason = new_id("re", self.rng), weighted(self.rng, REFUND_REASONS)
        refund = other.refund_object(
            payment, refund_id=refund_id, created=self.clock, amount=amount, reason=reason
        )
        charge = pay.charge_object(payment, amount_refunded=amount, risk_score=self._risk(payment))
        request = new_request(self.rng)
        events = [
            self._event(
                "charge.refunded",
                charge,
                payment,
                0,
                request=request,
                previous_attributes={"amount_refunded": 0, "refunded": False},
            ),
            self._event("refund.created", refund, payment, 0, request=request),
        ]
        if self.rng.random() < 0.3:  # the acquirer reference number arrives a day later
            arn = "".join(self.rng.choices("0123456789", k=23))
            card = {
                **refund["destination_details"]["card"],
                "reference": arn,
                "reference_status": "available",
            }
            later = {**refund, "destination_details": {"card": card, "type": "card"}}
            previous = {
                "destination_details": {"card": {"reference": None, "reference_status": "pending"}}
            }
            for event_type in ("charge.refund.updated", "refund.updated"):
                events.append(
                    self._event(event_type, later, payment, 86400, previous_attributes=previous)
                )
        return events

    def _dispute(self) -> list[dict]:
        payment = self._take_settled()
        reason, dispute_id = weighted(self.rng, DISPUTE_REASONS), new_id("dp", self.rng)
        self.disputed.append((payment, dispute_id, reason))
        dispute = other.dispute_object(
            payment, dispute_id=dispute_id, created=self.clock, reason=reason
        )
        return [self._event("charge.dispute.created", dispute, payment, 0)]

    def _dispute_closed(self) -> list[dict]:
        payment, dispute_id, reason = self.disputed.popleft()
        status = "won" if self.rng.random() < 0.35 else "lost"
        dispute = other.dispute_object(
            payment, dispute_id=dispute_id, created=self.clock, reason=reason, status=status
        )
        return [
            self._event(
                "charge.dispute.closed",
                dispute,
                payment,
                0,
                previous_attributes={"status": "under_review"},
            )
        ]

    def _other(self) -> list[dict]:
        payment = self._payment()
        if payment.customer is not None and self.rng.random() < 0.5:
            obj = other.customer_object(payment.customer, self.clock, payment.merchant)
            return [self._event("customer.created", obj, payment, 0)]
        obj = other.invoice_object(payment, new_id("in", self.rng), new_id("sub", self.rng, 14))
        return [self._event("invoice.paid", obj, payment, 0)]


def generate_events(
    n: int,
    seed: int = 0,
    *,
    start: datetime = DEFAULT_START,
    mean_gap_s: float = 0.5,
    customers: int = 500,
    mix: dict[str, float] | None = None,
    population: Population | None = None,
    until: datetime | None = None,
) -> Iterator[dict]:
    """``n`` valid Stripe events told as stories (see the module docstring), deterministic for a
    ``seed``. Stories start ``mean_gap_s`` apart on average from ``start``; ``mix`` reweighs the
    stories of ``DEFAULT_MIX``; ``population`` (default: drawn from the seed) fixes who trades.

    ``until`` (the moment the events are delivered, say now) is the stream's present: no event
    created after it is produced — a bank debit that settles or a refund detail that arrives
    days later would only be delivered then — and the stream ends early, with fewer than ``n``
    events, once its clock passes it."""
    rng = random.Random(seed)
    population = population or Population.draw(rng, customers=customers, start=start)
    teller = _Storyteller(rng, population, start, mean_gap_s)
    mix = mix or DEFAULT_MIX
    latest = None if until is None else unix(until)
    produced = 0
    while produced < n:
        story = teller.story(mix)
        if latest is not None:
            if unix(teller.clock) > latest:
                return
            story = [event for event in story if event["created"] <= latest]
        for event in story[: n - produced]:
            produced += 1
            yield event


def malform(event: dict, kind: str, rng: random.Random) -> bytes:
    """The body of ``event`` broken in the way ``kind`` (one of ``MALFORMED_KINDS``) names."""
    if kind == "not_json":
        body = encode(event)
        return body[: rng.randrange(1, len(body) - 1)]
    event = orjson.loads(encode(event))  # a private deep copy
    obj = event["data"]["object"]
    if kind == "missing_id":
        del event["id"]
    elif kind == "missing_type":
        del event["type"]
    elif kind == "missing_data_object":
        event["data"] = {}
    elif kind == "missing_object_id":
        del obj["id"]
    elif kind == "negative_amount":
        obj["amount"] = -abs(obj["amount"] or 100)
    elif kind == "string_amount":
        obj["amount"] = str(obj["amount"])
    elif kind == "amount_too_large":  # thirteen digits: above every limit Stripe documents
        obj["amount"] = rng.randint(2, 50) * 10**12
    elif kind == "invalid_currency":
        obj["currency"] = rng.choice(INVALID_CURRENCIES)
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; one of {MALFORMED_KINDS}")
    return encode(event)


def generate_payloads(
    n: int,
    seed: int = 0,
    *,
    malformed_fraction: float = 0.0,
    start: datetime = DEFAULT_START,
    mean_gap_s: float = 0.5,
    mix: dict[str, float] | None = None,
    until: datetime | None = None,
) -> Iterator[Payload]:
    """``n`` request bodies of ``generate_events(n, seed, ...)`` (``until``: see there), of which
    about ``malformed_fraction`` are replaced by a broken variant of the same event. Kinds are drawn
    evenly among those that apply: events the pipeline does not model (``customer.created``,
    ``invoice.paid``) are only broken in ways the receiver routes to the DLQ."""
    rng = random.Random(f"{seed}:malformed")
    events = generate_events(n, seed, start=start, mean_gap_s=mean_gap_s, mix=mix, until=until)
    for event in events:
        if malformed_fraction and rng.random() < malformed_fraction:
            modelled = isinstance(event["data"]["object"].get("amount"), int)
            kind = rng.choice(MALFORMED_KINDS if modelled else _ENVELOPE_KINDS)
            yield Payload(malform(event, kind, rng), kind)
        else:
            yield Payload(encode(event))
