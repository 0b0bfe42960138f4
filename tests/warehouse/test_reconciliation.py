"""Reconciliation's Iceberg reads on real tables: the bounded bronze lookup, what earlier runs
sent, and the last reconciliation of each day (what ``lakehouse audit`` shows)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from simulator import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms.reconciliation import RunFacts, Window, classify, reconciliation_rows
from warehouse.catalog import ensure_tables, get_catalog
from warehouse.io import append
from warehouse.reconciliation import (
    event_ids_in_bronze,
    last_reconciliation_per_day,
    recovered_ids,
)
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, GOLD_RECONCILIATION

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)


def test_bronze_is_looked_up_from_the_given_receipt_time_on() -> None:
    bronze = ensure_tables(get_catalog())[BRONZE_WEBHOOK_EVENTS.identifier_str]
    early, late, ahead = make_stripe_event(), make_stripe_event(), make_stripe_event()
    received = {
        early["id"]: T0 - timedelta(days=2),
        late["id"]: T0 + timedelta(hours=1),
        ahead["id"]: NOW + timedelta(hours=30),  # a receiver whose clock runs ahead
    }
    deliveries = bronze_frame([early, late, ahead], received_at=lambda e: received[e["id"]])
    append(bronze, deliveries.to_arrow(), {})
    wanted = pl.Series([early["id"], late["id"], ahead["id"], "evt_never_delivered"])

    found = event_ids_in_bronze(bronze, wanted, received_from=T0 - timedelta(days=1), now=NOW)

    # the early delivery was received before the bound: not read
    assert sorted(found.to_list()) == sorted([late["id"], ahead["id"]])
    everything = event_ids_in_bronze(bronze, wanted, received_from=T0 - timedelta(days=3), now=NOW)
    assert sorted(everything.to_list()) == sorted([early["id"], late["id"], ahead["id"]])
    assert event_ids_in_bronze(bronze, wanted[:0], received_from=T0).to_list() == []


def run_rows(run_id: str, day: date, sent: list[str], at: datetime) -> pl.DataFrame:
    start = datetime.combine(day, datetime.min.time(), UTC)
    window = Window(start, start + timedelta(days=1))
    listed = pl.DataFrame(
        {"event_id": sent, "created_at": [start + timedelta(hours=1)] * len(sent)},
        schema={"event_id": pl.String, "created_at": pl.Datetime("us", "UTC")},
    )
    classified = classify(listed, pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String))
    return reconciliation_rows(
        classified, sent, RunFacts(run_id, "stripe", "all", window, False, at)
    )


def test_recovered_ids_come_from_the_days_asked_for_only() -> None:
    table = ensure_tables(get_catalog())[GOLD_RECONCILIATION.identifier_str]
    append(table, run_rows("r1", date(2026, 11, 19), ["evt_a", "evt_b"], T0).to_arrow(), {})
    append(table, run_rows("r2", date(2026, 11, 20), ["evt_c"], T0).to_arrow(), {})

    assert sorted(recovered_ids(table, [date(2026, 11, 19)]).to_list()) == ["evt_a", "evt_b"]
    assert recovered_ids(table, [date(2026, 11, 21)]).to_list() == []


def test_the_last_reconciliation_of_each_day_is_the_latest_run() -> None:
    catalog = get_catalog()
    assert last_reconciliation_per_day(catalog).is_empty()  # never ran: no table, no rows
    table = ensure_tables(catalog)[GOLD_RECONCILIATION.identifier_str]
    d19, d20 = date(2026, 11, 19), date(2026, 11, 20)
    append(table, run_rows("first", d19, ["evt_a"], T0).to_arrow(), {})
    append(table, run_rows("second", d19, [], T0 + timedelta(days=1)).to_arrow(), {})
    append(table, run_rows("other-day", d20, ["evt_b"], T0).to_arrow(), {})

    last = last_reconciliation_per_day(catalog)

    assert last.select("day", "run_id").rows() == [(d19, "second"), (d20, "other-day")]
    assert last.columns == GOLD_RECONCILIATION.column_names
    assert last_reconciliation_per_day(catalog, since=d20)["run_id"].to_list() == ["other-day"]
