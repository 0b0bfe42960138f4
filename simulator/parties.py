"""The parties of a simulated payment: merchants (in ``reference``), customers, cards, and one
payment attempt with its ids and amount, drawn deterministically from a ``random.Random``."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulator.reference import (
    CARD_BRANDS,
    CARD_FUNDING,
    CURRENCY_EXPONENT,
    OTHER_COUNTRIES,
    TYPICAL_AMOUNT,
    Merchant,
)

_ALPHABET = string.ascii_letters + string.digits
_FIRST = (
    "Ada",
    "Kenji",
    "Min-jun",
    "Fatima",
    "Lucas",
    "Amelie",
    "Noah",
    "Yuki",
    "Omar",
    "Priya",
    "Sofia",
    "Jonas",
    "Chloe",
    "Hyun",
    "Layla",
    "Mateo",
    "Grace",
    "Tariq",
    "Emma",
    "Ravi",
)
_LAST = (
    "Lovelace",
    "Tanaka",
    "Kim",
    "Al-Sabah",
    "Martin",
    "Dubois",
    "Smith",
    "Sato",
    "Haddad",
    "Patel",
    "Rossi",
    "Becker",
    "Moreau",
    "Park",
    "Nasser",
    "Garcia",
    "Hopper",
    "Aziz",
)


@dataclass(frozen=True)
class Customer:
    """A Stripe customer (``cus_…``) with the details that end up in billing details."""

    id: str
    name: str
    email: str
    country: str


@dataclass(frozen=True)
class Card:
    """A saved card payment method (``pm_…``) as its ``card`` hash describes it."""

    payment_method: str
    brand: str
    last4: str
    country: str
    exp_month: int
    exp_year: int
    funding: str
    fingerprint: str


@dataclass(frozen=True)
class Payment:
    """One payment attempt: who pays whom, how much, with what, and the ids of its objects."""

    merchant: Merchant
    customer: Customer | None
    card: Card
    amount: Any  # int in minor units; anything else only in deliberately malformed events
    currency: str
    created: datetime
    payment_intent: str
    charge: str
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    #: ``card``, or a bank debit (``sepa_debit``, ``us_bank_account``) that goes via processing
    payment_method_type: str = "card"


def new_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    """A Stripe-style object id: ``{prefix}_`` and ``length`` base-62 characters."""
    return f"{prefix}_{''.join(rng.choices(_ALPHABET, k=length))}"


def unix(moment: datetime) -> int:
    """Unix seconds of a timezone-aware datetime (naive datetimes are bugs in payments)."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return int(moment.timestamp())


def weighted(rng: random.Random, weights: dict) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def new_customer(rng: random.Random, country: str | None = None) -> Customer:
    """A customer with a name, an e-mail and a home country (random when not given)."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    number = rng.randrange(1000)
    email = f"{first}.{last}{number}@example.com".lower().replace(" ", "").replace("'", "")
    return Customer(
        id=new_id("cus", rng, 14),
        name=f"{first} {last}",
        email=email,
        country=country or rng.choice(OTHER_COUNTRIES),
    )


def new_card(rng: random.Random, country: str, created: datetime, brand: str | None = None) -> Card:
    """A card issued in ``country`` that is valid for one to five years after ``created``."""
    return Card(
        payment_method=new_id("pm", rng),
        brand=brand or weighted(rng, CARD_BRANDS),
        last4=f"{rng.randrange(10_000):04d}",
        country=country,
        exp_month=rng.randint(1, 12),
        exp_year=created.year + rng.randint(1, 5),
        funding=weighted(rng, CARD_FUNDING),
        fingerprint="".join(rng.choices(_ALPHABET, k=16)),
    )


VALID_MAJOR_CEILING = 900_000.0


def random_amount(rng: random.Random, currency: str) -> int:
    """A plausible basket in minor units: log-normal around the currency's typical amount."""
    median, step = TYPICAL_AMOUNT.get(currency, (40.0, 1))
    # at most 40 medians, and under the pipeline's default limit (1,000,000 major units) so that
    # a valid simulated payment never lands in quarantine as INVALID_AMOUNT_TOO_LARGE
    ceiling = min(median * 40, VALID_MAJOR_CEILING)
    major = min(max(median * rng.lognormvariate(0.0, 0.9), median / 20), ceiling)
    minor = round(major * 10 ** CURRENCY_EXPONENT.get(currency, 2) / step) * step
    return max(minor, step * 50 if step == 1 else step)


def new_payment(
    rng: random.Random,
    merchant: Merchant,
    customer: Customer | None,
    card: Card,
    created: datetime,
    *,
    amount: int | None = None,
    currency: str | None = None,
    metadata: dict[str, str] | None = None,
    payment_method_type: str = "card",
) -> Payment:
    """A payment attempt with fresh ``pi_``/``ch_`` ids; amount and currency default to a random
    basket in the merchant's currency; metadata gets the merchant's ``merchant_id`` (non-Connect
    merchants) and an ``order_id``."""
    currency = currency or merchant.currency
    return Payment(
        merchant=merchant,
        customer=customer,
        card=card,
        amount=random_amount(rng, currency) if amount is None else amount,
        currency=currency,
        created=created,
        payment_intent=new_id("pi", rng),
        charge=new_id("ch", rng),
        metadata={
            **merchant.metadata,
            "order_id": f"ord_{rng.randrange(10**7, 10**8)}",
            **(metadata or {}),
        },
        payment_method_type=payment_method_type,
    )
