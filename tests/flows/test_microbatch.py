"""The micro-batch pipeline on a real broker and real Iceberg tables: nothing lost or doubled."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from flows.audit import run_audit
from flows.context import Lakehouse
from flows.held import run_release
from flows.loop import run_loop
from flows.stages import GateFailed, load_bronze
from settings import get_settings
from simulator.events import make_stripe_event
from warehouse import connect
from warehouse.io import append, scan
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def drain(**kwargs) -> dict:
    lh = Lakehouse()
    try:
        return run_loop(
            lh,
            max_records=kwargs.get("max_records", 10_000),
            max_seconds=2.0,
            until_idle=True,
            run_for_seconds=120,
            log=print,
            **{k: v for k, v in kwargs.items() if k != "max_records"},
        ).as_dict()
    finally:
        lh.close()


def count(sql: str) -> int:
    return connect().execute(sql).fetchone()[0]


def _without(event: dict, *path: str) -> dict:
    broken = copy.deepcopy(event)
    target = broken
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return broken


def _with_object(event: dict, **fields) -> dict:
    changed = copy.deepcopy(event)
    changed["data"]["object"].update(fields)
    return changed


def malformed_bodies() -> dict[str, bytes | dict]:
    """One delivery per rejection code, each built from a valid event."""
    base = lambda: make_stripe_event("payment_intent.succeeded", currency="usd")  # noqa: E731
    return {
        "INVALID_JSON": b'{"id": "evt_broken", "type": "payment_intent.succeeded", ',
        "MISSING_EVENT_ID": _without(base(), "id"),
        "MISSING_EVENT_TYPE": _without(base(), "type"),
        "MISSING_DATA_OBJECT": _without(base(), "data", "object"),
        "MISSING_OBJECT_ID": _without(base(), "data", "object", "id"),
        "INVALID_AMOUNT": _with_object(base(), amount="1000"),
        "INVALID_AMOUNT_NEGATIVE": _with_object(base(), amount=-500),
        "INVALID_AMOUNT_TOO_LARGE": _with_object(base(), amount=250_000_000),
        "INVALID_CURRENCY": _with_object(base(), currency="xxx"),
        "INVALID_EVENT_TIME": make_stripe_event(
            "payment_intent.succeeded", created=datetime(2018, 3, 1, tzinfo=UTC)
        ),
    }


def test_every_delivery_is_accounted_for_once_with_its_code(deliveries) -> None:
    valid = [
        make_stripe_event(t)
        for t in (
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "charge.succeeded",
            "refund.created",
            "charge.dispute.created",
            "payment_intent.canceled",
        )
    ]
    money = {
        "JPY": (
            make_stripe_event("payment_intent.succeeded", currency="jpy", amount=5000),
            Decimal("5000"),
        ),
        "KRW": (
            make_stripe_event("payment_intent.succeeded", currency="krw", amount=12000),
            Decimal("12000"),
        ),
        "KWD": (
            make_stripe_event("payment_intent.succeeded", currency="kwd", amount=12345),
            Decimal("12.345"),
        ),
        "USD": (
            make_stripe_event("payment_intent.succeeded", currency="usd", amount=1999),
            Decimal("19.99"),
        ),
    }
    other = make_stripe_event("customer.created")
    bad = malformed_bodies()
    bodies = [*valid, *(e for e, _ in money.values()), other, *bad.values()]
    retry = valid[0]  # the provider retries one event: a second delivery of the same id
    deliveries.send([*bodies, retry])

    totals = drain()

    assert count("SELECT count(*) FROM bronze.webhook_events") == len(bodies) + 1
    assert count("SELECT count(DISTINCT delivery_id) FROM bronze.webhook_events") == len(bodies) + 1
    assert count("SELECT count(*) FROM silver.payment_events") == len(valid) + len(money)
    assert count("SELECT count(DISTINCT event_id) FROM silver.payment_events") == len(valid) + 4
    codes = dict(
        connect()
        .execute("SELECT error_code, count(*) FROM silver.quarantine GROUP BY 1")
        .fetchall()
    )
    assert codes == dict.fromkeys(bad, 1)
    assert totals["duplicates_dropped"] == 1 and totals["not_modelled"] == 1
    silver = count("SELECT count(*) FROM silver.payment_events")
    quarantine = count("SELECT count(*) FROM silver.quarantine")
    assert len(bodies) + 1 == silver + quarantine + totals["duplicates_dropped"] + 1  # + other
    for currency, (event, amount) in money.items():
        row = (
            connect()
            .execute(
                "SELECT currency, amount FROM silver.payment_events WHERE provider_event_id = ?",
                [event["id"]],
            )
            .fetchone()
        )
        assert row == (currency, amount)


def test_provider_retry_and_group_reset_leave_silver_and_gold_unchanged(deliveries) -> None:
    events = [make_stripe_event("payment_intent.succeeded") for _ in range(20)]
    deliveries.send(events)
    drain()
    before = (
        connect()
        .execute("SELECT count(*), sum(amount_minor) FROM silver.payment_events")
        .fetchone()
    )
    daily = connect().execute("SELECT sum(payments_succeeded) FROM gold.merchant_daily").fetchone()

    deliveries.send(events[:5])  # the provider delivers five of them again
    deliveries.kafka.reset_group()  # and an operator resets the group to replay every offset
    drain()

    assert count("SELECT count(*) FROM bronze.webhook_events") == 25  # every delivery, once
    after = (
        connect()
        .execute("SELECT count(*), sum(amount_minor) FROM silver.payment_events")
        .fetchone()
    )
    assert after == before
    assert (
        connect().execute("SELECT sum(payments_succeeded) FROM gold.merchant_daily").fetchone()
        == daily
    )


def test_a_run_ends_with_gold_caught_up_however_far_off_its_next_pass(deliveries) -> None:
    paid = [make_stripe_event("payment_intent.succeeded") for _ in range(12)]
    deliveries.send(paid[:4])
    totals = drain(max_records=4, gold_every_seconds=3600)  # one gold pass, at the start
    deliveries.send(paid[4:])
    totals = drain(max_records=4, gold_every_seconds=3600)

    assert totals["rows_in"]["bronze"] == 8 and totals["batches"] >= 2
    assert count("SELECT count(*) FROM gold.payment_scores") == 12  # the last 8 too
    assert count("SELECT sum(payments_succeeded) FROM gold.merchant_daily") == 12


KILL_POINTS = ["mid-consume", "after-bronze", "after-offsets", "after-quarantine", "after-silver"]


def _run_until_killed(point: str, marker: Path) -> None:
    """Start the loader in a subprocess, wait until it reaches ``point``, then kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.flows.crash_harness", point, str(marker), "25"],
        cwd=os.getcwd(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"the loader never reached {point}"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_9_at_every_point_then_restart_loses_and_duplicates_nothing(
    deliveries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the group notices a killed loader after the shortest session timeout a broker allows
    monkeypatch.setenv("LAKEHOUSE_CONSUMER_SESSION_TIMEOUT_MS", "6000")
    get_settings.cache_clear()
    valid = 0
    for n, point in enumerate(KILL_POINTS):
        bodies = [make_stripe_event("payment_intent.succeeded") for _ in range(30)]
        deliveries.send([*bodies, malformed_bodies()["INVALID_CURRENCY"]])
        valid += len(bodies)
        _run_until_killed(point, tmp_path / f"reached-{n}")

    drain()  # restart: a new loader finishes the work

    sent = valid + len(KILL_POINTS)
    assert count("SELECT count(*) FROM bronze.webhook_events") == sent
    assert count("SELECT count(DISTINCT delivery_id) FROM bronze.webhook_events") == sent
    assert count("SELECT count(*) FROM silver.payment_events") == valid
    assert count("SELECT count(DISTINCT event_id) FROM silver.payment_events") == valid
    assert count("SELECT count(*) FROM silver.quarantine") == len(KILL_POINTS)
    report = run_audit()
    assert report.ok, report.problems


def test_one_future_and_one_2018_event_in_a_batch_of_1000_are_quarantined_alone(
    deliveries,
) -> None:
    good = [make_stripe_event("payment_intent.succeeded") for _ in range(1000)]
    future = make_stripe_event(
        "payment_intent.succeeded", created=datetime.now(UTC) + timedelta(days=3)
    )
    old = make_stripe_event("payment_intent.succeeded", created=datetime(2018, 6, 1, tzinfo=UTC))
    deliveries.send([*good[:400], future, *good[400:], old])

    totals = drain()  # no operator: nothing is held

    assert totals["quarantined_by_code"] == {"INVALID_EVENT_TIME": 2}
    assert count("SELECT count(*) FROM silver.payment_events") == 1000
    quarantined = (
        connect()
        .execute("SELECT event_id, error_code FROM silver.quarantine ORDER BY event_id")
        .fetchall()
    )
    assert quarantined == sorted(
        [(future["id"], "INVALID_EVENT_TIME"), (old["id"], "INVALID_EVENT_TIME")]
    )


def test_a_bronze_batch_that_breaks_its_contract_is_held_until_an_operator_accepts_it(
    deliveries,
) -> None:
    events = [make_stripe_event("payment_intent.succeeded") for _ in range(4)]
    deliveries.send(events)
    lh = Lakehouse()
    try:
        assert load_bronze(lh, 100, 10.0).rows_out == 4
        # a second, misconfigured writer lands the same deliveries again
        bronze = lh.table(BRONZE_WEBHOOK_EVENTS)
        append(bronze, scan(bronze), summary={"writer": "misconfigured-backfill"})
    finally:
        lh.close()

    with pytest.raises(GateFailed, match=r"bronze_webhook_events failed: .*unique\(delivery_id\)"):
        drain()
    assert count("SELECT count(*) FROM silver.payment_events") == 0  # nothing promoted

    result = run_release("accept", by="ops@example.com", reason="duplicates of one writer")

    assert result["rows_out"] == 4  # silver keeps one row per event
    assert count("SELECT count(DISTINCT event_id) FROM silver.payment_events") == 4
    silver = Lakehouse().table(SILVER_PAYMENT_EVENTS)
    assert silver.current_snapshot().summary["lakehouse.held-batch-decision"] == (
        "accept by ops@example.com: duplicates of one writer"
    )
