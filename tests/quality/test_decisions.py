"""An operator's decision on a held batch: what each action quarantines, and the hold record."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from quality.decisions import HeldBatch, HeldBatchDecision, rejected_deliveries
from quality.gates import Failure, GateResult

AT = datetime(2026, 11, 30, tzinfo=UTC)
DELIVERIES = pl.DataFrame({"delivery_id": ["a", "b", "b", "c", "d"]})
EVENTS = pl.DataFrame({"delivery_id": ["a", "b", "c"], "event_id": ["e1", "e2", "e3"]})


def failed(suite: str, *failures: Failure) -> GateResult:
    return GateResult(suite, False, len(failures), list(failures), 5, AT)


UNIQUE = Failure("expect_column_values_to_be_unique", "delivery_id", "2 unexpected", (1, 2))
SHARE = Failure("expect_column_values_to_be_between", "quarantine_share", "observed 0.7")


def decide(action: str, *results: GateResult) -> pl.DataFrame:
    decision = HeldBatchDecision(action, by="ana", reason="checked")
    return rejected_deliveries(decision, list(results), DELIVERIES, EVENTS)


def test_split_rejects_the_events_of_the_flagged_rows_only() -> None:
    out = decide("split", failed("bronze_webhook_events", UNIQUE), failed("silver_batch", SHARE))
    assert out["delivery_id"].to_list() == ["b"]
    assert out["error_detail"].item() == (
        "gate failed (bronze_webhook_events: expect_column_values_to_be_unique(delivery_id)); "
        "split by ana: checked"
    )


def test_rows_flagged_in_the_events_frame_map_to_their_deliveries() -> None:
    dup = Failure("expect_column_values_to_be_unique", "event_id", "2 unexpected", (0, 2))
    out = decide("split", failed("silver_payment_events", dup))
    assert out["delivery_id"].to_list() == ["a", "c"]


def test_quarantine_rejects_every_event_and_accept_none() -> None:
    whole = decide("quarantine", failed("silver_batch", SHARE))
    assert whole["delivery_id"].to_list() == ["a", "b", "c"]
    assert "quarantine by ana: checked" in whole["error_detail"][0]
    assert decide("accept", failed("silver_batch", SHARE)).is_empty()


def test_a_decision_needs_a_known_action_who_and_why() -> None:
    with pytest.raises(ValueError, match="one of"):
        HeldBatchDecision("ignore", by="ana", reason="x")
    with pytest.raises(ValueError, match="who"):
        HeldBatchDecision("split", by=" ", reason="x")


def test_a_hold_survives_its_record_and_holds_only_at_its_watermark() -> None:
    hold = HeldBatch.now(["silver_batch"], ["silver_batch: share"], 120, 42, AT)
    assert HeldBatch.from_json(hold.to_json()) == hold
    assert hold.holds_at(42) and not hold.holds_at(43)
    assert HeldBatch.now(["x"], [], 1, None, AT).holds_at(None)
