"""Row rules quarantine rows, gates hold only for batch-level trouble, and a held batch is shown
by ``lakehouse status`` and released by an operator (accept, quarantine whole, or split).

Bronze is written directly (real Iceberg tables in a temp warehouse, real Great Expectations
gates): these stages need no broker.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from flows.context import Lakehouse
from flows.held import run_release
from flows.stages import GateFailed, promote_silver
from lakehouse.cli import app
from lakehouse.status import silver_hold
from quality.decisions import SUMMARY_HELD
from settings import get_settings
from simulator.events import make_stripe_event
from tests.support.landing import land, rows_of, set_env
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS, SILVER_QUARANTINE

NOW = datetime.now(UTC)


def events(n: int, seed: int, **overrides) -> list[dict]:
    rng = random.Random(seed)
    created = NOW - timedelta(minutes=10)
    return [
        make_stripe_event("payment_intent.succeeded", rng=rng, created=created, **overrides)
        for _ in range(n)
    ]


def test_a_batch_quarantining_too_large_a_share_is_held_and_shown_until_it_goes_through(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(
        lh, [*events(50, seed=1), *events(70, seed=2, currency="xxx")], received_at=NOW
    )  # 58 % bad

    with pytest.raises(GateFailed, match=r"silver_batch failed: .*\(quarantine_share\)"):
        promote_silver(lh)
    assert rows_of(lh, SILVER_PAYMENT_EVENTS).is_empty()  # nothing promoted …
    assert rows_of(lh, SILVER_QUARANTINE).is_empty()  # … nor quarantined: the batch waits
    hold = silver_hold(get_settings())  # what another process (`lakehouse status`) reads
    assert hold is not None and hold.gates == ("silver_batch",) and hold.rows == 120
    assert any("release-held-batch --split" in c for c in hold.release_commands)

    with pytest.raises(GateFailed):  # still held; the hold is recorded once, since the first time
        promote_silver(Lakehouse())
    assert silver_hold(get_settings()) == hold
    summaries = [
        s.summary.additional_properties for s in lh.table(SILVER_PAYMENT_EVENTS).snapshots()
    ]
    assert sum(SUMMARY_HELD in s for s in summaries) == 1

    status = CliRunner().invoke(app, ["status"])
    assert "held batch" in status.output and "120 bronze rows held by silver_batch" in status.output
    assert "lakehouse run release-held-batch --split --by YOU" in status.output

    set_env(monkeypatch, gate_max_quarantine_share="0.9")  # the fix: this share is expected
    report = promote_silver(Lakehouse())
    assert (report.rows_out, report.quarantined) == (50, {"INVALID_CURRENCY": 70})
    assert silver_hold(get_settings()) is None  # cleared by the batch going through


def test_split_promotes_the_rows_that_pass_and_quarantines_the_rows_the_gate_flagged(
    lh: Lakehouse,
) -> None:
    first = land(lh, events(6, seed=3), received_at=NOW)
    # a second, misconfigured writer lands two of the same deliveries again
    lh.append(BRONZE_WEBHOOK_EVENTS, first.slice(2, 2).to_arrow(), summary={"writer": "other"})
    with pytest.raises(GateFailed, match=r"bronze_webhook_events failed: .*unique\(delivery_id\)"):
        promote_silver(lh)

    result = run_release("split", by="ana@example.com", reason="two deliveries landed twice")

    assert (result["rows_in"], result["rows_out"], result["duplicates"]) == (8, 4, 2)
    quarantine = rows_of(lh, SILVER_QUARANTINE)
    assert sorted(quarantine["delivery_id"]) == sorted(first["delivery_id"][2:4])
    assert set(quarantine["error_code"]) == {"GATE_REJECTED"}
    detail = quarantine["error_detail"][0]
    assert "bronze_webhook_events: expect_column_values_to_be_unique(delivery_id)" in detail
    assert "split by ana@example.com: two deliveries landed twice" in detail
    silver = lh.table(SILVER_PAYMENT_EVENTS)
    assert silver.current_snapshot().summary["lakehouse.held-batch-decision"] == (
        "split by ana@example.com: two deliveries landed twice"
    )
    assert rows_of(lh, SILVER_PAYMENT_EVENTS).height == 4
    assert silver_hold(get_settings()) is None


def test_split_of_a_share_hold_promotes_every_event_and_rows_keep_their_codes(
    lh: Lakehouse,
) -> None:
    land(lh, [*events(40, seed=4), *events(70, seed=5, amount=-1)], received_at=NOW)
    with pytest.raises(GateFailed):
        promote_silver(lh)

    result = run_release("split", by="ops", reason="a partner's broken test batch")

    assert result["rows_out"] == 40
    assert result["quarantined"] == {"INVALID_AMOUNT_NEGATIVE": 70}  # no row was the gate's


def test_an_operator_can_quarantine_a_held_batch_whole(lh: Lakehouse) -> None:
    first = land(lh, events(3, seed=6), received_at=NOW)
    lh.append(BRONZE_WEBHOOK_EVENTS, first.head(1).to_arrow(), summary={"writer": "other"})
    with pytest.raises(GateFailed):
        promote_silver(lh)

    result = run_release("quarantine", by="ana@example.com", reason="replayed test data")

    assert (result["rows_out"], result["quarantined"]) == (0, {"GATE_REJECTED": 3})
    detail = rows_of(lh, SILVER_QUARANTINE)["error_detail"][0]
    assert "quarantine by ana@example.com: replayed test data" in detail
    assert "expect_column_values_to_be_unique(delivery_id)" in detail
