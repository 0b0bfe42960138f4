"""The recovery plan: steps in time order, chosen by expected recovered value (success
probability × amount, net of attempt costs), a new card as the last resort, none of the retries
the card networks forbid, and the customer's churn risk and history in the new card's chance."""

from __future__ import annotations

import pytest

from ml.recovery import NEW_CARD, NEW_CARD_PRIOR, RETRY, STOP, new_card_probability, plan

GRID = [(1, 0.05), (6, 0.30), (24, 0.45), (72, 0.20)]


def actions(result) -> list[tuple[str, float]]:
    return [(s.action, s.delay_hours) for s in result.steps]


def test_without_costs_every_useful_step_is_taken_in_time_order_then_stop() -> None:
    result = plan(10_000, GRID, new_card=0.5)
    assert actions(result) == [
        (RETRY, 1),
        (RETRY, 6),
        (RETRY, 24),
        (RETRY, 72),
        (NEW_CARD, 72),
        (STOP, 72),
    ]
    reach = 1.0
    for step, (_, p) in zip(result.steps, [*GRID, (None, 0.5)], strict=False):
        assert step.reach_probability == pytest.approx(reach)
        assert step.expected_recovered_minor == pytest.approx(reach * p * 10_000)
        reach *= 1 - p
    assert result.expected_recovered_minor == pytest.approx(10_000 * (1 - reach))


def test_a_cost_drops_the_steps_whose_expected_recovery_does_not_pay_for_them() -> None:
    result = plan(1_000, GRID, new_card=0.05, cost_minor=60)
    # the 1 h retry and the new card each expect 50 of 1,000 for an attempt costing 60; the
    # 72 h retry, reached with 0.7 × 0.55, expects 0.385 × 200 = 77 for 0.385 × 60 = 23
    assert actions(result) == [(RETRY, 6), (RETRY, 24), (RETRY, 72), (STOP, 72)]
    assert result.net_value_minor == pytest.approx(
        (300 - 60) + 0.7 * (450 - 60) + 0.7 * 0.55 * (200 - 60)
    )


def test_the_amount_decides_whether_a_step_is_worth_its_cost() -> None:
    small = plan(100, GRID, new_card=0.3, cost_minor=50)  # at best 45 for 50
    large = plan(100_000, GRID, new_card=0.3, cost_minor=50)
    assert [a for a, _ in actions(small)] == [STOP]
    assert len(large.steps) == 6 and large.expected_recovered_minor > 0


def test_a_do_not_retry_decline_leaves_only_the_new_card() -> None:
    result = plan(10_000, GRID, new_card=0.4, decline_code="stolen_card")
    assert actions(result) == [(NEW_CARD, 0), (STOP, 0)]
    assert result.expected_recovered_minor == pytest.approx(4_000)


def test_the_plan_maximises_net_value_over_every_choice_of_steps() -> None:
    from itertools import combinations

    amount, cost, card = 2_000, 150, 0.35
    best = plan(amount, GRID, card, cost_minor=cost)
    for size in range(len(GRID) + 1):
        for chosen in combinations(GRID, size):
            for tail in ([], [(None, card)]):
                reach, value = 1.0, 0.0
                for _, p in [*chosen, *tail]:
                    value += reach * (p * amount - cost)
                    reach *= 1 - p
                assert best.net_value_minor >= value - 1e-9


def test_churn_risk_and_history_set_the_new_card_chance() -> None:
    assert new_card_probability(0.0, 0.9) == pytest.approx(0.9)
    assert new_card_probability(0.8, 0.9) == pytest.approx(0.2 * 0.9)
    assert new_card_probability(None, None) == NEW_CARD_PRIOR
    risky = plan(5_000, [], new_card_probability(0.95, 0.9), cost_minor=300)
    loyal = plan(5_000, [], new_card_probability(0.05, 0.9), cost_minor=300)
    assert [a for a, _ in actions(risky)] == [STOP]
    assert [a for a, _ in actions(loyal)] == [NEW_CARD, STOP]


@pytest.mark.parametrize("seed", range(20))
def test_the_linear_search_finds_what_trying_every_subset_finds(seed: int) -> None:
    import random
    from itertools import combinations

    rng = random.Random(seed)
    grid = [(d, rng.choice([0.0, 1.0, rng.random()])) for d in (1, 6, 24, 72)]
    amount, cost, card = rng.randint(1, 50_000), rng.choice([0, rng.randint(0, 500)]), rng.random()
    candidates = [
        [*chosen, *tail]
        for size in range(len(grid) + 1)
        for chosen in combinations(grid, size)
        for tail in ([], [(None, card)])
    ]

    def net(sequence: list) -> float:
        reach, value = 1.0, 0.0
        for _, p in sequence:
            value += reach * (p * amount - cost)
            reach *= 1 - p
        return value

    top = max(net(c) for c in candidates)
    shortest = min(len(c) for c in candidates if net(c) >= top - 1e-9)
    found = plan(amount, grid, card, cost_minor=cost)
    assert found.net_value_minor == pytest.approx(top, abs=1e-9)
    assert len(found.steps) - 1 == shortest  # the stop step aside
