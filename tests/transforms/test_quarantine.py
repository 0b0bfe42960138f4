"""A rebuild's quarantine rows: now failing rows recorded, pending rows that now pass released,
an operator's GATE_REJECTED rows left alone."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from transforms.quarantine import operator_rejected, quarantine_rows, rebuilt

THEN, NOW = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)


def rows(codes: dict[str, str], at: datetime = THEN, released: set[str] = frozenset()):
    deliveries = pl.DataFrame(
        {
            "delivery_id": list(codes),
            "payload": ["{}"] * len(codes),
            "topic": ["webhooks.stripe.charge"] * len(codes),
            "partition": [0] * len(codes),
            "offset": list(range(len(codes))),
            "received_at": [THEN] * len(codes),
            "_code": list(codes.values()),
        },
        schema_overrides={"partition": pl.Int32},
    )
    frame = quarantine_rows(
        deliveries,
        code=pl.col("_code"),
        detail=pl.lit("why"),
        event_id=pl.lit("evt_1"),
        event_type=pl.lit("charge.succeeded"),
        quarantined_at=at,
    )
    gone = pl.col("delivery_id").is_in(list(released))
    return frame.with_columns(
        pl.when(gone).then(pl.lit(THEN)).otherwise(pl.col("released_at")).alias("released_at")
    )


def test_a_rebuild_records_new_failures_and_releases_what_now_passes() -> None:
    recorded = rows(
        {"d1": "INVALID_CURRENCY", "d2": "INVALID_AMOUNT", "d3": "GATE_REJECTED", "d4": "X"},
        released={"d4"},
    )
    rejected = rows({"d2": "INVALID_AMOUNT", "d4": "INVALID_EVENT_TIME", "d5": "ROW_CONTRACT"}, NOW)
    deliveries = pl.Series(["d1", "d2", "d4", "d5", "d6"])  # d3: an operator's, kept out

    out = rebuilt(recorded, rejected, deliveries, "backfill 2026-11-01..2026-11-01", NOW)

    by_id = {r["delivery_id"]: r for r in out.iter_rows(named=True)}
    assert set(by_id) == {"d1", "d4", "d5"}  # d2 pending and still failing: left as it is
    assert by_id["d1"]["released_at"] == NOW and by_id["d1"]["released_by"].startswith("backfill")
    assert (by_id["d4"]["error_code"], by_id["d4"]["released_at"]) == ("INVALID_EVENT_TIME", None)
    assert by_id["d5"]["error_code"] == "ROW_CONTRACT"
    assert out.columns == recorded.columns


def test_operator_rejected_rows_are_the_pending_gate_rejected_ones() -> None:
    recorded = rows(
        {"d1": "GATE_REJECTED", "d2": "GATE_REJECTED", "d3": "INVALID_AMOUNT"}, released={"d2"}
    )
    assert operator_rejected(recorded).to_list() == ["d1"]
