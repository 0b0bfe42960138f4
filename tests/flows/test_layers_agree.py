"""Layers that agree: replay goes through the micro-batch's own rules and gates, backfill keeps the
accounting identity (bronze = silver + pending quarantine + duplicates + not modelled), and
test-mode events stay out of gold.

Bronze is written directly (real Iceberg tables, real gates): no broker needed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from flows.backfill import run_backfill
from flows.context import Lakehouse
from flows.replay import run_replay
from flows.stages import promote_silver, rebuild_merchant_daily, score_gold
from simulator.events import make_stripe_event
from tests.support.landing import land, rows_of, set_env
from warehouse.tables import (
    BRONZE_WEBHOOK_EVENTS,
    GOLD_MERCHANT_DAILY,
    GOLD_PAYMENT_SCORES,
    SILVER_PAYMENT_EVENTS,
    SILVER_QUARANTINE,
)

NOW = datetime.now(UTC)


def event(seed: int, event_type: str = "payment_intent.succeeded", **overrides) -> dict:
    overrides.setdefault("created", NOW - timedelta(minutes=10))
    return make_stripe_event(event_type, rng=random.Random(seed), **overrides)


def accounted(lh: Lakehouse, duplicates: int, not_modelled: int) -> dict[str, int]:
    """Every bronze delivery in exactly one place."""
    bronze, silver = rows_of(lh, BRONZE_WEBHOOK_EVENTS), rows_of(lh, SILVER_PAYMENT_EVENTS)
    quarantine = rows_of(lh, SILVER_QUARANTINE)
    pending = quarantine.filter(pl.col("released_at").is_null())
    places = pl.concat([silver["delivery_id"], pending["delivery_id"]])
    assert places.is_unique().all()  # no delivery both in silver and pending
    assert bronze.height == silver.height + pending.height + duplicates + not_modelled
    return {"silver": silver.height, "pending": pending.height}


def test_replay_uses_the_micro_batchs_rules_and_gates(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = [event(s, amount=150_000_000, currency="jpy") for s in (1, 2)]  # over 8 digits
    land(lh, [*big, *(event(s) for s in range(10, 15))], received_at=NOW)
    promote_silver(lh)
    assert accounted(lh, 0, 0) == {"silver": 5, "pending": 2}

    # the limit is raised, but the event-time window is narrowed too: the same row rules apply
    set_env(monkeypatch, amount_limits_minor='{"JPY": 200000000}', event_max_age_days="0.001")
    still = run_replay(codes=["INVALID_AMOUNT_TOO_LARGE"], released_by="ops", reason="limit")
    assert (still["released"], still["still_failing"]) == (0, 2)

    set_env(monkeypatch, event_max_age_days="400")
    done = run_replay(codes=["INVALID_AMOUNT_TOO_LARGE"], released_by="ops", reason="JPY limit")
    assert (done["selected"], done["replayed"], done["released"]) == (2, 2, 2)
    assert accounted(lh, 0, 0) == {"silver": 7, "pending": 0}
    released = rows_of(lh, SILVER_QUARANTINE)
    assert set(released["released_by"]) == {"ops: JPY limit"}


def test_backfill_moves_rows_between_silver_and_quarantine_and_keeps_the_identity(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap = [event(s, amount=1_000, currency="usd") for s in range(20, 27)]
    dear = [event(s, amount=5_000, currency="usd") for s in range(30, 33)]
    big = [event(s, amount=150_000_000, currency="jpy") for s in (40, 41)]
    other = event(50, "customer.created")
    land(
        lh, [*cheap, *dear, *big, other, cheap[0]], received_at=NOW
    )  # the provider retried cheap[0]
    promote_silver(lh)
    score_gold(lh)
    rebuild_merchant_daily(lh)
    assert accounted(lh, duplicates=1, not_modelled=1) == {"silver": 10, "pending": 2}

    # a fix: JPY's limit is raised; and a merchant's USD payments above 20.00 are now refused
    set_env(monkeypatch, amount_limits_minor='{"JPY": 200000000, "USD": 2000}')
    result = run_backfill(NOW.date(), NOW.date())

    assert (result["silver_rows"], result["left_silver"], result["quarantined"]) == (9, 3, 3)
    assert accounted(lh, duplicates=1, not_modelled=1) == {"silver": 9, "pending": 3}
    quarantine = rows_of(lh, SILVER_QUARANTINE)
    pending = quarantine.filter(pl.col("released_at").is_null())
    assert set(pending["event_id"]) == {e["id"] for e in dear}
    assert set(pending["error_code"]) == {"INVALID_AMOUNT_TOO_LARGE"}
    released = quarantine.filter(pl.col("released_at").is_not_null())
    assert set(released["event_id"]) == {e["id"] for e in big}
    assert set(rows_of(lh, GOLD_PAYMENT_SCORES)["event_id"]) == set(
        rows_of(lh, SILVER_PAYMENT_EVENTS)["event_id"]
    )
    usd = rows_of(lh, GOLD_MERCHANT_DAILY).filter(pl.col("currency") == "USD")
    assert usd["volume_minor"].sum() == 7 * 1_000  # the refused payments left the volume

    again = run_backfill(NOW.date(), NOW.date())  # idempotent
    assert again["quarantine_rows_written"] == 0
    assert accounted(lh, duplicates=1, not_modelled=1) == {"silver": 9, "pending": 3}


def test_test_mode_events_reach_silver_but_not_gold(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = [event(s, amount=1_000, currency="eur") for s in (60, 61)]
    test = event(62, amount=7_000, currency="eur", livemode=False)
    land(lh, [*live, test], received_at=NOW)
    promote_silver(lh)
    score_gold(lh)
    rebuild_merchant_daily(lh)

    silver = rows_of(lh, SILVER_PAYMENT_EVENTS)
    assert dict(silver.select("provider_event_id", "livemode").iter_rows())[test["id"]] is False
    assert set(rows_of(lh, GOLD_PAYMENT_SCORES)["event_id"]) == {f"stripe:{e['id']}" for e in live}
    assert rows_of(lh, GOLD_MERCHANT_DAILY)["volume_minor"].sum() == 2_000

    set_env(monkeypatch, gold_include_test_mode="true")
    run_backfill(NOW.date(), NOW.date())
    assert rows_of(lh, GOLD_PAYMENT_SCORES).height == 3
    assert rows_of(lh, GOLD_MERCHANT_DAILY)["volume_minor"].sum() == 9_000
