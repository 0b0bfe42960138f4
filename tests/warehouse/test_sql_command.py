"""``lakehouse sql``: a table, CSV or JSON; time travel options; errors exit 1."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from lakehouse.cli import app
from tests.support.tables import make_silver_events
from warehouse.catalog import get_catalog
from warehouse.io import append, ensure_table
from warehouse.tables import SILVER_PAYMENT_EVENTS

pytestmark = pytest.mark.integration
runner = CliRunner()
QUERY = "SELECT event_id, amount, provider_created_at FROM silver.payment_events ORDER BY event_id"


@pytest.fixture
def snapshots() -> list[int]:
    table = ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)
    return [
        append(table, make_silver_events(range(2)), {}),
        append(table, make_silver_events(range(2, 3)), {}),
    ]


def test_sql_prints_a_table_by_default(snapshots: list[int]) -> None:
    result = runner.invoke(app, ["sql", QUERY])

    assert result.exit_code == 0, result.output
    assert "event_id" in result.output and "stripe:evt_2" in result.output
    assert "3 rows" in result.output


def test_sql_prints_csv_and_json(snapshots: list[int]) -> None:
    as_csv = runner.invoke(app, ["sql", QUERY, "--format", "csv"])
    as_json = runner.invoke(app, ["sql", QUERY, "-f", "json"])

    assert as_csv.exit_code == 0 and as_json.exit_code == 0, as_csv.output + as_json.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["event_id"] for r in rows] == ["stripe:evt_0", "stripe:evt_1", "stripe:evt_2"]
    assert rows[1]["amount"] == "1.0000"
    records = json.loads(as_json.output)
    assert records[2] == {
        "event_id": "stripe:evt_2",
        "amount": "2.0000",
        "provider_created_at": "2026-11-20T00:00:02+00:00",
    }


def test_sql_reads_as_of_a_snapshot_or_a_moment(snapshots: list[int]) -> None:
    count = "SELECT COUNT(*) AS n FROM silver.payment_events"
    table = ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)
    first_at = datetime.fromtimestamp(table.snapshots()[0].timestamp_ms / 1000, tz=UTC)

    by_id = runner.invoke(app, ["sql", count, "--snapshot", str(snapshots[0]), "-f", "json"])
    by_time = runner.invoke(app, ["sql", count, "--as-of", first_at.isoformat(), "-f", "json"])
    naive = runner.invoke(app, ["sql", count, "--as-of", "2000-01-01T00:00:00", "-f", "json"])

    assert json.loads(by_id.output) == [{"n": 2}]
    assert json.loads(by_time.output) == [{"n": 2}]
    assert json.loads(naive.output) == [{"n": 0}]  # a moment without offset is UTC


def test_sql_errors_exit_1_with_the_message() -> None:
    bad_sql = runner.invoke(app, ["sql", "SELECT * FROM silver.nope"])
    bad_time = runner.invoke(app, ["sql", "SELECT 1", "--as-of", "yesterday"])

    assert bad_sql.exit_code == 1 and "nope" in bad_sql.output
    assert bad_time.exit_code == 2 and "--as-of" in bad_time.output
