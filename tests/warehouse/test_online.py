"""The reads that keep the scoring API's online features fresh: the recent span of silver (and
whether older rows were left out), then only what later snapshots appended, or a signal to read
it whole again after a rewrite — on real Iceberg tables in the test's own warehouse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.tables import DAY, make_silver_events
from warehouse import online
from warehouse.catalog import ensure_table, get_catalog
from warehouse.io import append, replace_rows
from warehouse.tables import SILVER_PAYMENT_EVENTS

pytestmark = pytest.mark.integration
COLUMNS = ("event_id", "provider_created_at")


@pytest.fixture
def silver():
    return ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)


def test_recent_rows_read_the_span_before_the_latest_day_and_say_older_rows_exist(silver) -> None:
    append(silver, make_silver_events(range(0, 10), DAY - timedelta(days=20)), summary={})
    append(silver, make_silver_events(range(10, 20), DAY), summary={})
    rows, snapshot, older = online.recent_rows(silver, timedelta(days=5), COLUMNS)
    assert sorted(rows["event_id"]) == sorted(f"stripe:evt_{i}" for i in range(10, 20))
    assert older and snapshot == silver.current_snapshot().snapshot_id
    everything, _, older = online.recent_rows(silver, timedelta(days=30), COLUMNS)
    assert everything.height == 20 and not older


def test_appended_since_reads_only_new_appends_and_refuses_after_a_rewrite(silver) -> None:
    first = append(silver, make_silver_events(range(0, 10)), summary={})
    append(silver, make_silver_events(range(10, 15)), summary={})
    rows, current = online.appended_since(silver, first, COLUMNS)
    assert sorted(rows["event_id"]) == sorted(f"stripe:evt_{i}" for i in range(10, 15))
    assert current == silver.current_snapshot().snapshot_id

    replace_rows(silver, make_silver_events(range(0, 2)), "event_id", ["stripe:evt_0"], {})
    assert online.appended_since(silver, first, COLUMNS) is None  # read it whole again
    assert online.appended_since(silver, 12345, COLUMNS) is None  # not in its history
