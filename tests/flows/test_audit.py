"""``lakehouse audit`` on a real broker and real tables: a drained lakehouse is complete, pending
work is pending, and deliveries lost or doubled at any layer are named with their ranges."""

from __future__ import annotations

import httpx
import pyarrow as pa
import pytest
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
from typer.testing import CliRunner

from flows.audit import run_audit
from flows.context import Lakehouse
from flows.maintenance import maintenance
from flows.stages import load_bronze
from lakehouse.cli import app
from simulator.events import make_stripe_event
from tests.flows.test_microbatch import drain, malformed_bodies
from tests.support.broker import Deliveries
from tests.support.prefect import LocalPrefect
from warehouse import io
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, GOLD_PAYMENT_SCORES, SILVER_PAYMENT_EVENTS

pytestmark = pytest.mark.integration


def send_mixed(deliveries: Deliveries, payments: int = 30) -> list[dict]:
    """Payments, a not-modelled type, bad bodies and a provider's retry of one payment."""
    paid = [make_stripe_event("payment_intent.succeeded") for _ in range(payments)]
    other = make_stripe_event("customer.created")
    bad = malformed_bodies()
    deliveries.send([*paid, other, bad["INVALID_CURRENCY"], bad["INVALID_JSON"], paid[0]])
    return paid


def drop_rows(spec, column: str, values: list) -> None:
    """Rows lost from a table, as a faulty writer would lose them (one rewrite without them)."""
    table = Lakehouse().table(spec)
    io.replace_rows(table, pa.table({}), column, values, {"test": "rows lost"})


def audit_cli() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit"], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_a_drained_lakehouse_is_complete_layer_by_layer(deliveries: Deliveries) -> None:
    send_mixed(deliveries)
    drain()

    report = run_audit()
    code, output = audit_cli()

    assert report.ok, report.problems
    broker, bronze, gold, provider = (s.as_dict() for s in report.sections)
    assert not provider["rows"] and "never ran" in provider["notes"][0]  # no API key here
    assert sum(r["in bronze"] for r in broker["rows"]) == 34
    (day,) = bronze["rows"]
    assert (day["silver"], day["quarantine"], day["duplicates"], day["not modelled"]) == (
        30,
        2,
        1,
        1,
    )
    assert sum(r["scored"] for r in gold["rows"]) == 30
    assert code == 0, output
    assert "complete: nothing missing, nothing doubled" in output


def test_work_not_done_yet_is_pending_not_missing(deliveries: Deliveries) -> None:
    send_mixed(deliveries)
    drain()
    deliveries.send([make_stripe_event("payment_intent.succeeded") for _ in range(7)])
    lh = Lakehouse()
    try:
        assert load_bronze(lh, 1000, 10.0).rows_out == 7  # in bronze, not promoted to silver
    finally:
        lh.close()
    deliveries.send([make_stripe_event("payment_intent.succeeded") for _ in range(5)])

    report = run_audit()

    assert report.ok, report.problems
    broker, bronze, _, _ = (s.as_dict() for s in report.sections)
    recorded = [r for r in broker["rows"] if r["recorded"] != "-"]
    assert sum(r["pending"] for r in recorded) == 5  # on the broker, not in bronze yet
    assert bronze["pending"] == 7  # in bronze, after silver's watermark


def test_offsets_lost_or_doubled_in_bronze_are_named_with_their_exact_ranges(
    deliveries: Deliveries,
) -> None:
    send_mixed(deliveries)
    drain()
    bronze = Lakehouse().table(BRONZE_WEBHOOK_EVENTS)
    rows = io.scan(bronze, columns=["topic", "partition", "offset"]).to_pylist()
    by_partition: dict[tuple[str, int], list[int]] = {}
    for row in rows:
        by_partition.setdefault((row["topic"], row["partition"]), []).append(row["offset"])
    (topic, part), offsets = max(by_partition.items(), key=lambda kv: len(kv[1]))
    offsets.sort()
    lost = offsets[1:3]  # two deliveries in a row vanish
    drop_rows(BRONZE_WEBHOOK_EVENTS, "delivery_id", [f"{topic}:{part}:{o}" for o in lost])
    twice = offsets[-2:]  # and a misconfigured writer lands the last two again
    again = io.scan(bronze, f"topic = '{topic}' AND partition = {part} AND offset >= {twice[0]}")
    io.append(bronze, again, {"writer": "misconfigured"})

    code, output = audit_cli()

    assert code == 1, output
    assert f"{topic}:{part}: 2 offsets missing from bronze: {lost[0]}..{lost[1]}" in output
    assert f"{topic}:{part}: 2 offsets in bronze more than once: {twice[0]}..{twice[1]}" in output


def test_events_lost_or_doubled_in_silver_and_gold_are_problems(deliveries: Deliveries) -> None:
    paid = send_mixed(deliveries)
    drain()
    lost_event = f"stripe:{paid[3]['id']}"
    drop_rows(SILVER_PAYMENT_EVENTS, "event_id", [lost_event])
    silver = Lakehouse().table(SILVER_PAYMENT_EVENTS)
    again = io.scan(silver, f"event_id = 'stripe:{paid[4]['id']}'")
    io.append(silver, again, {"test": "a second writer"})
    drop_rows(GOLD_PAYMENT_SCORES, "event_id", [f"stripe:{paid[5]['id']}"])

    report = run_audit()

    problems = "\n".join(report.problems)
    assert "1 bronze deliveries are in neither silver nor the quarantine" in problems
    assert f"silver holds 1 events more than once: stripe:{paid[4]['id']}" in problems
    assert "1 eligible silver events have no score" in problems
    assert "gold.merchant_daily" in problems  # silver now differs from what gold summed


def test_the_maintenance_flow_publishes_the_audit_and_fails_on_a_loss(
    deliveries: Deliveries, prefect_server: LocalPrefect, isolated_settings
) -> None:
    send_mixed(deliveries)
    drain()
    drop_rows(SILVER_PAYMENT_EVENTS, "event_type", ["payment.succeeded"])  # silver lost them

    settings = {PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: str(prefect_server.home)}
    with temporary_settings(updates=settings):
        state = maintenance(return_state=True)
        APILogHandler().flush()  # now, while the server is up (not at the interpreter's exit)

    assert state.is_failed()
    # the 30 payments and the provider's retry of one of them
    assert "31 bronze deliveries are in neither silver" in str(state.message)
    found = httpx.post(
        f"{prefect_server.api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["audit"]}}, "sort": "CREATED_DESC", "limit": 1},
        timeout=30,
    ).json()
    assert found and "PROBLEMS FOUND" in found[0]["data"]
    assert found[0]["flow_run_id"] == str(state.state_details.flow_run_id)
