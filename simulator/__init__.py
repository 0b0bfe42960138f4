"""Stripe webhook simulator: realistic events, signed HTTP deliveries, direct topic writes.

Modules, from the vocabulary up:

- ``reference``: API version, currencies and their exponents, card brands, decline codes,
  dispute reasons, the default ``MERCHANTS``;
- ``parties``: ``Customer``, ``Card``, ``Payment`` and their seeded constructors;
- ``payment_objects`` / ``other_objects``: Stripe objects from explicit arguments (no randomness);
- ``events``: the event ``envelope``, ``make_stripe_event(type, **overrides)``, ``encode``;
- ``stream``: ``generate_events(n, seed)`` (stories with a realistic mix) and
  ``generate_payloads(n, seed, malformed_fraction=…)`` (bodies, some deliberately broken);
- ``signing``: the ``Stripe-Signature`` header;
- ``send``: signed HTTP deliveries at a rate with a concurrency limit (httpx, async);
- ``direct``: the same messages as the receiver, produced straight to the topics.

``send`` and ``direct`` load httpx / confluent_kafka and are imported on their own.
"""

from simulator.events import MISSING, encode, envelope, make_stripe_event, objects_for
from simulator.parties import (
    Card,
    Customer,
    Payment,
    new_card,
    new_customer,
    new_id,
    new_payment,
    random_amount,
)
from simulator.reference import API_VERSION, CURRENCY_EXPONENT, DECLINES, MERCHANTS, Merchant
from simulator.signing import sign, signature_header
from simulator.stream import (
    EXPECTED_REJECTION,
    MALFORMED_KINDS,
    Payload,
    generate_events,
    generate_payloads,
    malform,
)

__all__ = [
    "API_VERSION",
    "CURRENCY_EXPONENT",
    "DECLINES",
    "EXPECTED_REJECTION",
    "MALFORMED_KINDS",
    "MERCHANTS",
    "MISSING",
    "Card",
    "Customer",
    "Merchant",
    "Payload",
    "Payment",
    "encode",
    "envelope",
    "generate_events",
    "generate_payloads",
    "make_stripe_event",
    "malform",
    "new_card",
    "new_customer",
    "new_id",
    "new_payment",
    "objects_for",
    "random_amount",
    "sign",
    "signature_header",
]
