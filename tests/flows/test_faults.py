"""Real faults under the ``microbatch`` flow, run as Prefect flow runs (each in its own process,
as a worker runs them) against a real Prefect server with their task retries, on a real broker
and real tables: after each, every offset produced is in bronze exactly once, and the audit
finds nothing missing or doubled in any layer.

Faults: the catalog failing for one commit (a stand-in raised from pyiceberg in the flow's
process) and for 35 s (SQLite locked by another process past its 30 s busy timeout, started on
cue by the flow's process: ``fault_harness``), the broker stopped and restarted, the reader
child killed (between batches, and on cue while a batch is committed), one of three loaders
killed. The kill -9 of the loop at every commit point is ``test_microbatch.py``'s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.audit import run_audit
from lakehouse.broker import LocalBroker
from lakehouse.prefect_api import prefect_env
from settings import get_settings
from simulator.events import make_stripe_event
from tests.support.broker import Deliveries, end_offsets_of, write_deliveries
from tests.support.faults import reader_child_of
from tests.support.prefect import LocalPrefect, retried
from warehouse import connect
from warehouse.catalog import get_catalog
from warehouse.queries import existing_table
from warehouse.tables import BRONZE_WEBHOOK_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FlowRun:
    id: str
    state: str
    output: str


def start_flow(prefect: LocalPrefect, fault: str = "none", max_records: int = 500):
    """The ``microbatch`` flow in its own process (as a worker runs it), ``fault`` installed."""
    env = {**os.environ, **prefect_env(prefect.api_url, prefect.home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flows.fault_harness", fault, str(max_records)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> FlowRun:
    """The flow run's id and final state, once its process has ended."""
    output, _ = proc.communicate(timeout=600)
    result = {}
    for line in reversed(output.strip().splitlines()):
        if line.startswith('{"flow_run_id"'):
            result = json.loads(line)
            break
    assert "flow_run_id" in result, output[-3000:]
    return FlowRun(result["flow_run_id"], result["state"], output)


def run_flow(prefect: LocalPrefect, fault: str = "none", max_records: int = 500) -> FlowRun:
    return finish(start_flow(prefect, fault, max_records))


def bronze_commits() -> int:
    bronze = existing_table(get_catalog(), BRONZE_WEBHOOK_EVENTS)
    return 0 if bronze is None else len(bronze.snapshots())


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def assert_every_offset_once(bootstrap: str, start: dict[tuple[str, int], int]) -> None:
    """Every offset the broker holds from ``start`` on is in bronze, exactly once; and the
    audit finds nothing missing or doubled in any layer."""
    end = {(tp.topic, tp.partition): tp.offset for tp in end_offsets_of(bootstrap)}
    rows = connect().execute(
        'SELECT topic, "partition", list("offset" ORDER BY "offset") FROM bronze.webhook_events '
        "GROUP BY 1, 2"
    )
    landed = {(topic, part): offsets for topic, part, offsets in rows.fetchall()}
    for key, high in end.items():
        assert landed.get(key, []) == list(range(start.get(key, 0), high)), key
    report = run_audit()
    assert report.ok, report.problems


def start_of(deliveries: Deliveries) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): tp.offset for tp in deliveries.kafka.start_offsets}


def payments(n: int) -> list[dict]:
    return [make_stripe_event("payment_intent.succeeded") for _ in range(n)]


@pytest.fixture
def short_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead group member's partitions move after the shortest session a broker allows."""
    monkeypatch.setenv("LAKEHOUSE_CONSUMER_SESSION_TIMEOUT_MS", "6000")
    get_settings.cache_clear()


def test_a_bronze_commit_that_fails_once_is_retried_by_prefect_without_losing_its_batch(
    deliveries: Deliveries, prefect_server: LocalPrefect
) -> None:
    deliveries.send(payments(3000))

    run = run_flow(prefect_server, fault="commit-fails-once", max_records=1000)

    assert run.state == "COMPLETED", run.output[-3000:]
    assert retried(prefect_server.api_url, run.id, "load-bronze"), "Prefect never retried"
    assert_every_offset_once(deliveries.kafka.broker.bootstrap, start_of(deliveries))


def test_a_catalog_locked_past_its_busy_timeout_loses_nothing(
    deliveries: Deliveries, prefect_server: LocalPrefect
) -> None:
    deliveries.send(payments(3000))

    first = run_flow(prefect_server, fault="catalog-locked", max_records=1000)
    second = run_flow(prefect_server)  # the next run finishes what a failed one left

    assert "database is locked" in first.output, first.output[-3000:]
    assert retried(prefect_server.api_url, first.id, "load-bronze"), "Prefect never retried"
    assert second.state == "COMPLETED", second.output[-3000:]
    assert_every_offset_once(deliveries.kafka.broker.bootstrap, start_of(deliveries))


def test_the_reader_child_killed_is_replaced_and_loses_nothing(
    deliveries: Deliveries, prefect_server: LocalPrefect, short_sessions: None
) -> None:
    deliveries.send(payments(6000))

    # once between two batches (the next poll replaces the child) ...
    flow = start_flow(prefect_server, fault="reader-killed", max_records=500)
    wait_for(lambda: reader_child_of(flow.pid) is not None, "the reader child")
    first_child = reader_child_of(flow.pid)
    os.kill(first_child, signal.SIGKILL)
    wait_for(lambda: reader_child_of(flow.pid) not in (None, first_child), "a new reader child")
    run = finish(flow)  # ... and once while a batch is being committed (the fault)

    assert "fault: the reader child" in run.output, run.output[-3000:]
    assert run.state == "COMPLETED", run.output[-3000:]
    assert retried(prefect_server.api_url, run.id, "load-bronze"), "Prefect never retried"
    assert_every_offset_once(deliveries.kafka.broker.bootstrap, start_of(deliveries))


def test_the_broker_stopped_and_restarted_mid_run_loses_nothing(
    fresh_broker: Callable[[], LocalBroker], prefect_server: LocalPrefect, short_sessions: None
) -> None:
    broker = fresh_broker()
    write_deliveries(broker.bootstrap, payments(6000))
    flow = start_flow(prefect_server, max_records=500)
    wait_for(lambda: bronze_commits() >= 2, "the first bronze commits")

    broker.stop()
    time.sleep(5)
    broker.start()
    write_deliveries(broker.bootstrap, payments(1000))  # and the stream goes on
    first = finish(flow)
    second = run_flow(prefect_server)

    assert first.state == "COMPLETED", first.output[-3000:]
    assert second.state == "COMPLETED", second.output[-3000:]
    assert_every_offset_once(broker.bootstrap, {})


def test_one_of_three_loaders_killed_loses_and_doubles_nothing(
    deliveries: Deliveries, prefect_server: LocalPrefect, short_sessions: None
) -> None:
    deliveries.send(payments(9000))
    loaders = [start_flow(prefect_server, max_records=500) for _ in range(3)]
    wait_for(lambda: bronze_commits() >= 3, "the loaders' first bronze commits")

    os.killpg(loaders[0].pid, signal.SIGKILL)  # the loader and its reader child
    loaders[0].wait()
    survivors = [finish(loader) for loader in loaders[1:]]
    last = run_flow(prefect_server)  # the next run takes whatever the group had not reassigned

    for run in [*survivors, last]:
        assert run.state == "COMPLETED", run.output[-3000:]
    assert_every_offset_once(deliveries.kafka.broker.bootstrap, start_of(deliveries))
