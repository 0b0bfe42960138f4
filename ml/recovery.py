"""The recovery plan of a failed payment: which retries, whether to ask the customer for a new
card, and when to stop, chosen by expected recovered value. Pure: probabilities in, plan out.

Steps happen one after the other, each only if every earlier one failed. A step with success
probability ``p``, reached with probability ``q`` (all earlier steps failed), expects to recover
``q × p × amount`` and costs ``q × cost`` (an attempt's fee: card networks charge per
authorization). The plan is the sequence with the largest expected recovered value net of
costs, among every sequence of retries at the candidate delays (later ones after earlier ones,
each measured from the failure), optionally followed by asking for a new card; a tie goes to the
shorter plan. Probabilities of successive steps are treated as independent (the retry model
scores each delay after the failure alone).

- A retry's ``p`` is the retry model's for that delay.
- Asking for a new card succeeds if the customer stays and pays: ``(1 − churn risk) ×`` the
  customer's share of successful attempts over 30 days (``NEW_CARD_PRIOR`` without history). The
  retry model cannot say that: a new card is a new payment method.
- After a decline the card networks forbid retrying (``DO_NOT_RETRY``: the card is lost, stolen,
  expired, or the issuer says never), only a new card is tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Decline codes after which a retry of the same card must not be attempted (Visa and
#: Mastercard "do not reattempt" categories, as Stripe maps them to decline codes).
DO_NOT_RETRY = frozenset(
    {
        "lost_card",
        "stolen_card",
        "pickup_card",
        "restricted_card",
        "expired_card",
        "incorrect_number",
        "card_not_supported",
        "transaction_not_allowed",
        "fraudulent",
    }
)
#: Chance that a customer without payment history updates the card when asked (a policy
#: assumption, not learnt: the history holds no card updates).
NEW_CARD_PRIOR = 0.5
RETRY, NEW_CARD, STOP = "retry", "new_card", "stop"


@dataclass(frozen=True)
class Step:
    """One step of a plan: what, how long after the failure, and what it expects."""

    action: str
    delay_hours: float
    success_probability: float
    reach_probability: float  # every earlier step failed
    expected_recovered_minor: float  # reach × success × amount


@dataclass(frozen=True)
class Plan:
    """The steps in order (the last one ``stop``) and what the plan expects to recover."""

    steps: tuple[Step, ...]
    expected_recovered_minor: float
    net_value_minor: float  # expected recovered value less the expected cost of the attempts


def new_card_probability(churn_risk: float | None, success_share_30d: float | None) -> float:
    """The chance that asking for a new card recovers the payment."""
    stays = 1.0 - (churn_risk if churn_risk is not None else 0.0)
    pays = success_share_30d if success_share_30d is not None else NEW_CARD_PRIOR
    return stays * pays


def plan(
    amount_minor: int,
    retries: Sequence[tuple[float, float]],
    new_card: float,
    decline_code: str | None = None,
    cost_minor: float = 0.0,
) -> Plan:
    """The best plan for a failed payment of ``amount_minor``: ``retries`` are (delay in hours
    after the failure, success probability) per candidate delay, ``new_card`` the chance that
    asking for a new card recovers it, ``cost_minor`` what one attempt costs."""
    allowed = [] if decline_code in DO_NOT_RETRY else sorted(retries)
    best = _best_sequence(allowed, new_card, amount_minor, cost_minor)
    steps = _steps(best, amount_minor)
    recovered = sum(step.expected_recovered_minor for step in steps)
    return Plan(steps, recovered, _net_value(best, amount_minor, cost_minor))


def _best_sequence(
    retries: list[tuple[float, float]], new_card: float, amount_minor: int, cost_minor: float
) -> list:
    """The sequence of steps with the largest net value, the shorter of equals: backwards over
    the retries (in time order), the best plan from retry ``i`` on is either the best from
    ``i + 1`` on, or retry ``i`` followed by it (its value scaled by ``1 − p``, which keeps the
    order of the alternatives). Linear in the candidate delays instead of trying all ``2^n``
    subsets (``tests/ml/test_recovery.py`` checks it against them)."""

    def better(a: tuple[float, list], b: tuple[float, list]) -> tuple[float, list]:
        return a if (a[0], -len(a[1])) >= (b[0], -len(b[1])) else b

    card = (new_card * amount_minor - cost_minor, [(None, new_card)])
    best = better((0.0, []), card)  # after the last retry: stop, or ask for a new card
    for delay, p in reversed(retries):
        after = best if p < 1.0 else (0.0, [])  # a sure success ends the plan
        take = (p * amount_minor - cost_minor + (1.0 - p) * after[0], [(delay, p), *after[1]])
        best = better(best, take)
    return best[1]


def _net_value(sequence: list, amount_minor: int, cost_minor: float) -> float:
    reach, value = 1.0, 0.0
    for _, p in sequence:
        value += reach * (p * amount_minor - cost_minor)
        reach *= 1.0 - p
    return value


def _steps(sequence: list, amount_minor: int) -> tuple[Step, ...]:
    """Each step with its reach and expected value; a new card is asked for when the last retry
    failed (at its delay), and the plan stops there too."""
    steps, reach, at = [], 1.0, 0.0
    for delay, p in sequence:
        at = delay if delay is not None else at
        action = RETRY if delay is not None else NEW_CARD
        steps.append(Step(action, float(at), p, reach, reach * p * amount_minor))
        reach *= 1.0 - p
    return (*steps, Step(STOP, float(at), 0.0, reach, 0.0))
