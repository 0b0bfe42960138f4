"""Real faults under the ``microbatch`` flow, run as a Prefect flow run against a real Prefect
server with its task retries: after each, every offset produced is in bronze exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.prefect_api import prefect_env
from simulator.events import make_stripe_event
from tests.support.broker import Deliveries, end_offsets_of
from tests.support.prefect import LocalPrefect, retried
from warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FlowRun:
    id: str
    state: str
    output: str


def run_flow(prefect: LocalPrefect, fault: str = "none", max_records: int = 1000) -> FlowRun:
    """The ``microbatch`` flow in its own process (as a worker runs it), ``fault`` installed."""
    env = {
        **os.environ,
        **prefect_env(prefect.api_url, prefect.home),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.flows.fault_harness", fault, str(max_records)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1:] or ["{}"]
    try:
        result = json.loads(last[0])
    except json.JSONDecodeError:
        result = {}
    assert "flow_run_id" in result, output[-3000:]
    return FlowRun(result["flow_run_id"], result["state"], output)


def offsets_in_bronze() -> dict[tuple[str, int], list[int]]:
    rows = connect().execute(
        'SELECT topic, "partition", list("offset" ORDER BY "offset") FROM bronze.webhook_events '
        "GROUP BY 1, 2"
    )
    return {(topic, part): offsets for topic, part, offsets in rows.fetchall()}


def assert_every_offset_once(deliveries: Deliveries) -> None:
    """Every offset the broker holds since the test began is in bronze, exactly once."""
    start = {(tp.topic, tp.partition): tp.offset for tp in deliveries.kafka.start_offsets}
    end = {
        (tp.topic, tp.partition): tp.offset
        for tp in end_offsets_of(deliveries.kafka.broker.bootstrap)
    }
    landed = offsets_in_bronze()
    for key, high in end.items():
        assert landed.get(key, []) == list(range(start[key], high)), key


def test_a_bronze_commit_that_fails_once_is_retried_by_prefect_without_losing_its_batch(
    deliveries: Deliveries, prefect_server: LocalPrefect
) -> None:
    deliveries.send([make_stripe_event("payment_intent.succeeded") for _ in range(3000)])

    run = run_flow(prefect_server, fault="commit-fails-once", max_records=1000)

    assert run.state == "COMPLETED", run.output[-3000:]
    assert retried(prefect_server.api_url, run.id, "load-bronze"), "Prefect never retried"
    assert_every_offset_once(deliveries)
