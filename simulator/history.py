"""Labelled synthetic history: months of Stripe events whose behaviour a model can learn.

The world, per customer: favourite merchants, a payment rate, a preferred local hour, a typical
basket, a pay day (Fridays in the US, the 1st and 15th in Canada, the 1st elsewhere) and a
fragility that makes ``insufficient_funds`` likelier the longer ago pay day was. Structure a
model can find and a naive rule cannot fully:

- **fraud**: stolen cards and account takeovers come in bursts (velocity) on a new card, often
  issued abroad, at night local time, at risky merchants, usually after a few tiny card-testing
  charges and then for unusually large amounts; fresh fraudulent accounts do the same. Legitimate
  customers also renew cards, bank across euro-area borders, shop at night or splurge, and a few
  legitimate payments are disputed (some as "fraudulent").
- **retries**: merchants retry a declined payment after 1, 6, 24 or 72 hours (drawn at random,
  so every delay is observed); success depends on the decline code and the wait: transient errors
  recover fast and decay, ``insufficient_funds`` recovers only once pay day has passed, an expired
  card once the customer has saved a new one, lost or stolen cards never.
- **churn**: some customers leave; weeks before, they pay less often, smaller baskets, and fail
  more often.

Labels are only ever visible through later events, as with real data: ``charge.dispute.created``
with reason ``fraudulent``, a later ``payment_intent.succeeded`` of the same payment intent (same
``metadata.order_id``) after a failure, and the absence of payments.

Objects and envelopes come from the simulator's builders (``payment_objects``, ``other_objects``,
``events.envelope``); reference tables, calendar and rendering live in ``history_facts``.
``lakehouse simulate history`` delivers the events over HTTP or straight to the topics.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from simulator.history_facts import (
    EUROZONE,
    FRAUD_COUNTRIES,
    FRAUD_DECLINES,
    HOMES,
    NON_FRAUD_DISPUTES,
    RETRY_DELAYS_H,
    RETRY_SUCCESS,
    SOFT_DECLINES,
    Fact,
    at_local_hour,
    cycle_days,
    days_since_payday,
    fraud_hour,
    local_hour,
    new_id,
    new_payment,
    new_request_fast,
    paid_between,
    poisson,
    render,
    weighted,
)
from simulator.parties import Card, Customer, Payment, new_card, new_customer
from simulator.reference import CURRENCY_EXPONENT, TYPICAL_AMOUNT, Merchant

__all__ = ["RETRY_DELAYS_H", "generate_history"]


@dataclass
class _Shopper:
    """A customer's habits: who they buy from, how often, when, how much, and when they leave."""

    customer: Customer
    card: Card
    favourites: list[Merchant]
    rate: float  # payments per day
    hour: float  # preferred local hour
    spend: float  # basket multiplier
    fragility: float  # propensity to run out of money before pay day
    joined: datetime
    churn_at: datetime | None
    ramp_days: float
    card_expires: datetime | None
    card_renewed: datetime | None = None
    renewed_card: Card | None = None


def generate_history(
    days: int = 90,
    customers: int = 2000,
    merchants: int | None = None,
    seed: int = 7,
    end: datetime | None = None,
    *,
    fraud_rate: float = 0.08,
) -> Iterator[dict]:
    """Stripe events of ``days`` ending at ``end`` (default: this hour), in time order.

    ``merchants`` defaults to one per 25 customers; ``fraud_rate`` is the share of customers whose
    account or card is abused (plus half as many fraudulent accounts). Same arguments, same events.
    """
    end = (end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)).astimezone(UTC)
    world = _World(random.Random(seed), end - timedelta(days=days), end)
    world.populate(customers, merchants or max(8, customers // 25), fraud_rate)
    world.facts.sort(key=attrgetter("at", "seq"))
    builder = random.Random(f"{seed}:events")
    for fact in world.facts:
        yield render(fact, builder)


class _World:
    """Simulates merchants, customers and fraudsters, collecting the facts they cause."""

    def __init__(self, rng: random.Random, start: datetime, end: datetime) -> None:
        self.rng, self.start, self.end = rng, start, end
        self.facts: list[Fact] = []
        self.merchants: list[Merchant] = []

    def populate(self, customers: int, merchants: int, fraud_rate: float) -> None:
        self.merchants = [self._merchant(i) for i in range(merchants)]
        shoppers = [self._shopper() for _ in range(customers)]
        for shopper in shoppers:
            self._live(shopper)
        for victim in self.rng.sample(shoppers, round(fraud_rate * customers)):
            self._takeover(victim)
        for _ in range(round(fraud_rate * customers / 2)):
            self._fraudulent_account()

    # --- parties ------------------------------------------------------------------------------
    def _merchant(self, i: int) -> Merchant:
        rng = self.rng
        country = rng.choices(list(HOMES), [v[0] for v in HOMES.values()])[0]
        risk = rng.lognormvariate(0, 0.5) * (4 if rng.random() < 0.12 else 1)
        connect = rng.random() < 0.8
        ident = new_id("acct", rng, 16) if connect else f"merchant_{i:04d}"
        return Merchant(ident, f"Shop {i}", country, HOMES[country][1], connect, round(risk, 2))

    def _shopper(self) -> _Shopper:
        rng, span = self.rng, (self.end - self.start).total_seconds()
        home = rng.choice(self.merchants).country if rng.random() < 0.9 else rng.choice(list(HOMES))
        customer = new_customer(rng, home)
        abroad = 0.3 if home in EUROZONE else 0.02  # euro-area customers bank across borders
        card_country = rng.choice(EUROZONE) if rng.random() < abroad else home
        local = [m for m in self.merchants if m.country == home] or self.merchants
        favourites = [
            rng.choice(local if rng.random() < 0.85 else self.merchants)
            for _ in range(rng.randint(1, 4))
        ]
        joined = self.start + timedelta(seconds=span * rng.uniform(-0.5, 0.9))
        churn_at = (joined + timedelta(days=rng.uniform(15, 110))) if rng.random() < 0.45 else None
        expires = (
            self.start + timedelta(seconds=span * rng.random()) if rng.random() < 0.15 else None
        )
        return _Shopper(
            customer,
            new_card(rng, card_country, self.start),
            favourites,
            rate=min(3.0, max(0.03, rng.lognormvariate(math.log(0.3), 0.8))),
            hour=rng.gauss(0.5, 1.5) % 24
            if rng.random() < 0.1
            else min(23.0, rng.gauss(14, 4) % 24),
            spend=rng.lognormvariate(0, 0.5),
            fragility=rng.betavariate(1.2, 5),
            joined=max(joined, self.start),
            churn_at=churn_at,
            ramp_days=rng.uniform(14, 35),
            card_expires=expires,
        )

    def _amount(self, merchant: Merchant, scale: float) -> int:
        median, step = TYPICAL_AMOUNT.get(merchant.currency, (40.0, 1))
        major = median * scale * self.rng.lognormvariate(0, 0.45)
        minor = round(major * 10 ** CURRENCY_EXPONENT.get(merchant.currency, 2) / step) * step
        return max(minor, step)

    # --- legitimate behaviour -----------------------------------------------------------------
    def _live(self, s: _Shopper) -> None:
        """A customer's payments day by day until they leave or the history ends."""
        rng, day = self.rng, s.joined
        stop = min(self.end, s.churn_at or self.end)
        if s.card_expires:
            s.card_renewed = s.card_expires + timedelta(days=rng.uniform(0.5, 6))
            s.renewed_card = new_card(rng, s.card.country, s.card_renewed)
        while day < stop:
            fading = self._fading(s, day)
            weekend = 1.3 if day.weekday() >= 5 else 1.0
            for _ in range(poisson(rng, s.rate * weekend * (1 - 0.85 * fading))):
                hour = rng.gauss(s.hour, 2.5) % 24
                at = at_local_hour(day, hour, s.customer.country)
                if s.joined <= at < stop:
                    self._purchase(s, at, fading)
            day += timedelta(days=1)

    def _fading(self, s: _Shopper, at: datetime) -> float:
        """0 for a loyal customer, rising to 1 at the moment they churn."""
        if s.churn_at is None:
            return 0.0
        left = (s.churn_at - at).total_seconds() / 86400
        return min(1.0, max(0.0, 1 - left / s.ramp_days))

    def _purchase(self, s: _Shopper, at: datetime, fading: float) -> None:
        rng = self.rng
        merchant = rng.choice(s.favourites) if rng.random() < 0.9 else rng.choice(self.merchants)
        card = s.renewed_card if s.card_renewed and at >= s.card_renewed else s.card
        splurge = rng.lognormvariate(1.2, 0.4) if rng.random() < 0.05 else 1.0
        amount = self._amount(merchant, s.spend * splurge * (1 - 0.4 * fading))
        payment = new_payment(rng, merchant, s.customer, card, at, amount)
        decline = self._decline(s, merchant, at, fading)
        self._attempt(payment, at, decline, created=True)
        if decline is None:
            self._aftermath(payment, at, fraud=False)
        else:
            self._retry(s, payment, at, decline, fading)

    def _decline(self, s: _Shopper, merchant: Merchant, at: datetime, fading: float) -> str | None:
        if s.card_expires and s.card_expires <= at < (s.card_renewed or at):
            return "expired_card"
        since = days_since_payday(s.customer.country, at)
        broke = 0.6 * s.fragility * min(1.0, since / cycle_days(s.customer.country)) ** 2
        u = self.rng.random()
        if u < broke * (1 + 1.5 * fading):
            return "insufficient_funds"
        if u < broke * (1 + 1.5 * fading) + 0.05 * math.sqrt(merchant.risk):
            return weighted(self.rng, SOFT_DECLINES)
        return None

    def _retry(
        self, s: _Shopper, payment: Payment, at: datetime, decline: str, fading: float
    ) -> None:
        """The merchant's dunning: up to three retries, each after a randomly chosen delay."""
        rng = self.rng
        for _ in range(3):
            if rng.random() < 0.08:  # the customer gave up on the order
                return
            delay = rng.choice(RETRY_DELAYS_H)
            at = at + timedelta(hours=delay * rng.uniform(0.93, 1.07))
            renewed = s.card_renewed is not None and at >= s.card_renewed
            card = s.renewed_card if renewed and s.renewed_card else payment.card
            payment = replace(payment, charge=new_id("ch", rng), card=card)
            success = rng.random() < self._retry_success(s, payment, at, decline, delay, fading)
            self._attempt(payment, at, None if success else decline)
            if success:
                self._aftermath(payment, at, fraud=False)
                return

    def _retry_success(
        self, s: _Shopper, payment: Payment, at: datetime, decline: str, delay: int, fading: float
    ) -> float:
        country = s.customer.country
        if decline == "insufficient_funds":
            paid = paid_between(country, at - timedelta(hours=delay), at)
            p = 0.85 * (1 - 0.4 * s.fragility) if paid else 0.04
        elif decline == "expired_card":
            p = 0.9 if payment.card is s.renewed_card else 0.02
        else:
            p = RETRY_SUCCESS[decline][RETRY_DELAYS_H.index(delay)]
            if (
                decline in ("do_not_honor", "generic_decline", "incorrect_cvc")
                and local_hour(at, country) < 6
            ):
                p *= 0.6
        return p * (1 - 0.3 * fading)

    def _aftermath(self, payment: Payment, at: datetime, *, fraud: bool) -> None:
        """What a settled payment may cause later: a refund, or a dispute."""
        rng, risk = self.rng, payment.merchant.risk
        if fraud and rng.random() < 0.85:
            self._later(at, rng.uniform(3, 25), "charge.dispute.created", payment, "fraudulent")
        elif not fraud and rng.random() < 0.002 * risk:
            reason = weighted(rng, NON_FRAUD_DISPUTES)
            self._later(at, rng.uniform(3, 40), "charge.dispute.created", payment, reason)
        elif rng.random() < 0.03:
            self._later(at, rng.uniform(0.5, 10), "charge.refunded", payment, None)

    def _later(
        self, at: datetime, days: float, event_type: str, payment: Payment, reason: str | None
    ) -> None:
        when = at + timedelta(days=days)
        object_id = new_id("dp" if "dispute" in event_type else "re", self.rng)
        self._add(when, event_type, payment, {"reason": reason, "id": object_id})
        if event_type == "charge.refunded":
            self._add(when, "refund.created", payment, {"reason": reason, "id": object_id})

    # --- fraud --------------------------------------------------------------------------------
    def _takeover(self, victim: _Shopper) -> None:
        """A burst of payments on a stolen card in the victim's name."""
        rng = self.rng
        foreign = rng.random() < 0.5
        country = rng.choice(FRAUD_COUNTRIES) if foreign else victim.customer.country
        start = victim.joined + (self.end - victim.joined) * rng.random()
        at = at_local_hour(start, fraud_hour(rng), victim.customer.country)
        self._burst(victim.customer, new_card(rng, country, at), at, 2 + poisson(rng, 2.5))

    def _fraudulent_account(self) -> None:
        rng = self.rng
        customer = new_customer(rng, rng.choice(list(HOMES) + list(FRAUD_COUNTRIES)))
        country = rng.choice(FRAUD_COUNTRIES) if rng.random() < 0.5 else customer.country
        day = self.start + (self.end - self.start) * rng.random()
        at = at_local_hour(day, fraud_hour(rng), customer.country)
        self._burst(customer, new_card(rng, country, at), at, 1 + poisson(rng, 1.5))

    def _burst(self, customer: Customer, card: Card, at: datetime, attempts: int) -> None:
        rng = self.rng
        weights = [m.risk**2 for m in self.merchants]
        testing = rng.randint(1, 3) if rng.random() < 0.7 else 0  # card testing: tiny first
        tester = rng.choices(self.merchants, weights)[0]
        for i in range(testing + attempts):
            merchant = tester if i < testing else rng.choices(self.merchants, weights)[0]
            size = rng.uniform(0.01, 0.05) if i < testing else rng.lognormvariate(0.7, 0.6)
            amount = self._amount(merchant, size)
            payment = new_payment(rng, merchant, customer, card, at, amount)
            declined = rng.random() < (0.1 if i < testing else 0.2 + 0.08 * (i - testing))
            self._attempt(
                payment, at, weighted(rng, FRAUD_DECLINES) if declined else None, created=True
            )
            if not declined:
                self._aftermath(payment, at, fraud=True)
            at += timedelta(minutes=rng.expovariate(1 / 12))

    # --- facts --------------------------------------------------------------------------------
    def _attempt(
        self, payment: Payment, at: datetime, decline: str | None, *, created: bool = False
    ) -> None:
        detail = {"decline": decline, "request": new_request_fast(self.rng)}
        if created:
            self._add(at, "payment_intent.created", payment, detail)
        done = at + timedelta(seconds=2)
        if decline is None:
            self._add(done, "charge.succeeded", payment, detail)
            self._add(done, "payment_intent.succeeded", payment, detail)
        else:
            self._add(done, "charge.failed", payment, detail)
            self._add(done, "payment_intent.payment_failed", payment, detail)

    def _add(self, at: datetime, event_type: str, payment: Payment, detail: dict) -> None:
        if self.start <= at < self.end:
            self.facts.append(Fact(at, len(self.facts), event_type, payment, detail))
