"""Parts of the labelled history (``simulator.history``): the world's reference tables,
its calendar (local time, pay days), fast Stripe-shaped ids, and how one simulated fact becomes a
Stripe event through the simulator's object builders.
"""

from __future__ import annotations

import math
import random
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulator import other_objects as other
from simulator import payment_objects as pay
from simulator.events import envelope, new_request
from simulator.parties import Card, Customer, Payment
from simulator.reference import Merchant

RETRY_DELAYS_H = (1, 6, 24, 72)
#: Home countries of merchants and customers, their weight, currency and UTC offset.
HOMES = {
    "US": (0.36, "usd", -5),
    "GB": (0.15, "gbp", 0),
    "DE": (0.12, "eur", 1),
    "FR": (0.11, "eur", 1),
    "NL": (0.08, "eur", 1),
    "CA": (0.10, "cad", -5),
    "JP": (0.05, "jpy", 9),
    "KW": (0.03, "kwd", 3),
}
FRAUD_COUNTRIES = ("BR", "NG", "IN", "MX", "AE")
EUROZONE = ("DE", "FR", "NL")
OFFSET = {**{c: v[2] for c, v in HOMES.items()}, "BR": -3, "NG": 1, "IN": 5, "MX": -6, "AE": 4}
#: Success of a retry after 1, 6, 24, 72 hours, by decline code (insufficient_funds and
#: expired_card depend on pay day and on the card being replaced instead).
RETRY_SUCCESS = {
    "generic_decline": (0.10, 0.30, 0.55, 0.30),
    "do_not_honor": (0.05, 0.20, 0.50, 0.45),
    "processing_error": (0.90, 0.70, 0.40, 0.15),
    "incorrect_cvc": (0.70, 0.50, 0.30, 0.15),
    "card_velocity_exceeded": (0.10, 0.30, 0.75, 0.60),
    "lost_card": (0.02,) * 4,
    "stolen_card": (0.02,) * 4,
    "fraudulent": (0.01,) * 4,
}
SOFT_DECLINES = {
    "generic_decline": 0.35,
    "do_not_honor": 0.25,
    "processing_error": 0.12,
    "incorrect_cvc": 0.15,
    "card_velocity_exceeded": 0.05,
    "lost_card": 0.04,
    "stolen_card": 0.04,
}
FRAUD_DECLINES = {
    "fraudulent": 0.4,
    "stolen_card": 0.2,
    "card_velocity_exceeded": 0.2,
    "do_not_honor": 0.2,
}
NON_FRAUD_DISPUTES = {
    "product_not_received": 0.4,
    "duplicate": 0.15,
    "subscription_canceled": 0.15,
    "product_unacceptable": 0.15,
    "credit_not_processed": 0.05,
    "fraudulent": 0.10,
}


@dataclass
class Fact:
    """One event to emit: when, in which order, its type, the payment and what else it needs."""

    at: datetime
    seq: int
    event_type: str
    payment: Payment
    detail: dict


def render(fact: Fact, rng: random.Random) -> dict:
    """The Stripe event of one fact."""
    p, d, kind = fact.payment, fact.detail, fact.event_type
    obj: dict
    if kind == "payment_intent.created":
        obj = pay.payment_intent_object(p, status="requires_payment_method")
    elif kind == "payment_intent.succeeded":
        obj = pay.payment_intent_object(p)
    elif kind == "payment_intent.payment_failed":
        obj = pay.payment_intent_object(p, status="requires_payment_method", decline=d["decline"])
    elif kind in ("charge.succeeded", "charge.failed"):
        obj = pay.charge_object(
            p,
            status=kind.split(".")[1],
            decline=d["decline"],
            risk_score=min(99, int(rng.expovariate(1 / 18))),
        )
    elif kind == "charge.refunded":
        obj = pay.charge_object(p, amount_refunded=p.amount)
    elif kind == "refund.created":
        obj = other.refund_object(p, refund_id=d["id"], created=fact.at, reason=d["reason"])
    else:
        obj = other.dispute_object(p, dispute_id=d["id"], created=fact.at, reason=d["reason"])
    request = d.get("request") or new_request(rng, kind)
    return envelope(
        kind,
        obj,
        created=fact.at,
        rng=rng,
        account=p.merchant.account,
        request=request,
        event_id=new_id("evt", rng),
    )


# --- ids (Stripe's shape, drawn fast: histories have hundreds of thousands of them) -----------
_ALPHABET = (string.ascii_letters + string.digits).encode()
_TO_BASE62 = bytes(_ALPHABET[i % 62] for i in range(256))


def new_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    """A Stripe-style id, ``{prefix}_`` and ``length`` base-62 characters."""
    return f"{prefix}_{rng.randbytes(length).translate(_TO_BASE62).decode()}"


def new_request_fast(rng: random.Random) -> dict[str, str | None]:
    key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {"id": new_id("req", rng, 14), "idempotency_key": key}


def new_payment(
    rng: random.Random,
    merchant: Merchant,
    customer: Customer,
    card: Card,
    created: datetime,
    amount: int,
) -> Payment:
    order = {**merchant.metadata, "order_id": f"ord_{rng.randrange(10**7, 10**8)}"}
    return Payment(
        merchant,
        customer,
        card,
        amount,
        merchant.currency,
        created,
        new_id("pi", rng),
        new_id("ch", rng),
        order,
    )


# --- calendar -------------------------------------------------------------------------------
def local_hour(at: datetime, country: str) -> float:
    local = at + timedelta(hours=OFFSET.get(country, 0))
    return local.hour + local.minute / 60


def at_local_hour(day: datetime, hour: float, country: str) -> datetime:
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=hour - OFFSET.get(country, 0))


def is_payday(country: str, day: int, weekday: int) -> bool:
    if country == "US":
        return weekday == 4
    return day == 1 or (country == "CA" and day == 15)


def cycle_days(country: str) -> float:
    return 7.0 if country == "US" else 15.0 if country == "CA" else 30.0


def days_since_payday(country: str, at: datetime) -> int:
    local = at + timedelta(hours=OFFSET.get(country, 0))
    if country == "US":
        return (local.weekday() - 4) % 7
    if country == "CA" and local.day >= 15:
        return local.day - 15
    return local.day - 1


def paid_between(country: str, before: datetime, after: datetime) -> bool:
    """Whether a pay day (local date) lies in (date of ``before``, date of ``after``]."""
    shift = timedelta(hours=OFFSET.get(country, 0))
    day, last = (before + shift).date(), (after + shift).date()
    while day < last:
        day += timedelta(days=1)
        if is_payday(country, day.day, day.weekday()):
            return True
    return False


def fraud_hour(rng: random.Random) -> float:
    return rng.uniform(0, 5) if rng.random() < 0.6 else rng.uniform(0, 24)


def poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]
