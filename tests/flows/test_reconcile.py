"""Reconciliation end to end on the real parts: simulator events, some delivered through the
receiver, the others never; the micro-batch; ``reconcile`` against a stand-in for Stripe's Events
API (``tests/support/stripe_standin.py``, not Stripe); the missing events in bronze (source
reconciliation), in silver, and counted in ``gold.reconciliation``; nothing sent twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from flows.audit import run_audit
from flows.context import Lakehouse
from flows.loop import run_loop
from flows.reconcile import RecoveryIncomplete, reconcile, run_reconcile, window_of
from ingest import topics
from ingest.receiver import create_app
from ingest.stripe_events import EventsNotListed
from lakehouse.cli import app as cli
from lakehouse.supervisor import free_port
from settings import get_settings
from simulator import encode, generate_events
from simulator.send import send_one
from tests.support.broker import TopicTail, headers_of
from tests.support.server import serve
from tests.support.stripe import SECRET
from tests.support.stripe_standin import API_KEY, StripeStandIn, serving
from transforms.normalize import EVENT_TYPES
from warehouse import connect
from warehouse.audit import AuditReport, Section

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
SINCE = NOW - timedelta(days=2)


def simulated(n: int, seed: int) -> list[dict]:
    """Simulator events created over the day before the last hour (all inside the window)."""
    events = generate_events(n, seed, start=NOW - timedelta(days=1), mean_gap_s=1200)
    return [e for e in events if e["created"] < (NOW - timedelta(hours=1)).timestamp()]


def drain() -> dict:
    lh = Lakehouse()
    try:
        return run_loop(
            lh, max_records=10_000, max_seconds=2.0, until_idle=True, run_for_seconds=120, log=print
        ).as_dict()
    finally:
        lh.close()


def rows(sql: str) -> list[tuple]:
    return connect().execute(sql).fetchall()


def use_api(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_BASE", base)
    monkeypatch.setenv("LAKEHOUSE_STRIPE_MAX_NETWORK_RETRIES", "0")
    monkeypatch.setenv("LAKEHOUSE_STRIPE_RATE_LIMIT_BACKOFF_S", "0.01")
    get_settings.cache_clear()


@contextmanager
def stripe_with(events: list[dict], undelivered: set[str], monkeypatch) -> Iterator[StripeStandIn]:
    with serving(events, undelivered) as (base, standin):
        use_api(monkeypatch, base)
        yield standin


def deliver(events: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each event as Stripe delivers a webhook: signed, POSTed to the real receiver."""
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    get_settings.cache_clear()
    with serve(create_app()) as url:
        statuses = {
            send_one(encode(e), f"{url}/webhooks/stripe", SECRET).status_code for e in events
        }
    assert statuses == {200}


def in_list(ids: set[str]) -> str:
    return ", ".join(f"'{i}'" for i in sorted(ids))


def test_events_never_delivered_are_recovered_once_into_bronze_and_silver(
    clean_kafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = simulated(60, seed=13)
    undelivered = {e["id"] for e in events[1::4]}
    delivered = [e for e in events if e["id"] not in undelivered]
    window = window_of(SINCE, None, 48)
    deliver(delivered, monkeypatch)
    drain()
    tail = TopicTail(clean_kafka.broker.bootstrap, topics.ALL_TOPICS)

    with stripe_with(events, undelivered, monkeypatch):
        first = run_reconcile(window, failed_only=True).summary()
        before_loading = run_reconcile(window).summary()  # the loader has not run yet
        sent = tail.collect(lambda m: headers_of(m).get("source") == "reconciliation", 99, 5)
        drain()
        after_loading = run_reconcile(window).summary()
    tail.close()

    k, n = len(undelivered), len(events)
    counts = ("provider_events", "in_bronze", "recovered_earlier", "recovered", "still_missing")
    assert [first[c] for c in counts] == [k, 0, 0, k, 0]  # only failed deliveries listed
    assert [before_loading[c] for c in counts] == [n, n - k, k, 0, 0]  # known as sent
    assert [after_loading[c] for c in counts] == [n, n, 0, 0, 0]
    assert sorted(headers_of(m)["event-id"] for m in sent) == sorted(undelivered)  # sent once

    recovered = rows("SELECT event_id FROM bronze.webhook_events WHERE source = 'reconciliation'")
    assert sorted(r[0] for r in recovered) == sorted(undelivered)
    assert rows("SELECT count(*) FROM bronze.webhook_events")[0][0] == n
    modelled = {e["id"] for e in events if e["type"] in EVENT_TYPES}
    in_silver = rows(
        f"SELECT provider_event_id, count(*) FROM silver.payment_events "
        f"WHERE provider_event_id IN ({in_list(modelled)}) GROUP BY 1"
    )
    assert {r[0] for r in in_silver} == modelled and {r[1] for r in in_silver} == {1}
    assert undelivered & modelled, "the test must recover some modelled events"

    by_run = rows(
        "SELECT run_id, sum(provider_events), sum(recovered), sum(len(recovered_event_ids)) "
        "FROM gold.reconciliation GROUP BY 1 ORDER BY min(reconciled_at)"
    )
    assert [r[1:] for r in by_run] == [(k, k, k), (n, 0, 0), (n, 0, 0)]

    report = run_audit()  # the last run of each day: nothing missing, nothing waiting
    section = reconciliation_of(report)
    assert report.ok and section.ok and section.pending == 0, report.markdown()
    assert sum(row[3] for row in section.rows) == n  # provider events, last run per day


def reconciliation_of(report: AuditReport) -> Section:
    return next(s for s in report.sections if s.title == "last reconciliation with the provider")


@pytest.mark.parametrize("failure", ["unreachable", "rate-limited-after-one-page"])
def test_a_window_not_listed_completely_sends_nothing_and_writes_no_row(
    failure: str, clean_kafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = simulated(150, seed=21)  # more than one page
    assert len(events) > 100
    tail = TopicTail(clean_kafka.broker.bootstrap, topics.ALL_TOPICS)
    with serving(events) as (base, standin):
        if failure == "unreachable":
            base = f"http://127.0.0.1:{free_port()}"
        else:
            standin.rate_limit(1000, after=1)
        use_api(monkeypatch, base)

        with pytest.raises(EventsNotListed):
            run_reconcile(window_of(SINCE, None, 48))  # every event is missing from bronze

    assert tail.written() == 0
    tail.close()
    assert rows("SELECT count(*) FROM gold.reconciliation")[0][0] == 0


def test_events_the_broker_does_not_acknowledge_stay_missing_and_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = simulated(20, seed=3)
    monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # no broker
    monkeypatch.setenv("LAKEHOUSE_RECONCILE_SEND_TIMEOUT_S", "1")
    with stripe_with(events, set(), monkeypatch):
        result = run_reconcile(window_of(SINCE, None, 48))

    assert result.summary()["still_missing"] == len(events)
    assert result.summary()["recovered"] == 0
    with pytest.raises(RecoveryIncomplete, match=f"did not acknowledge {len(events)} recovered"):
        result.raise_if_incomplete()
    assert rows("SELECT sum(still_missing) FROM gold.reconciliation")[0][0] == len(events)


def test_the_cli_dry_run_reports_what_is_missing_and_an_unreachable_api_exits_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = simulated(12, seed=8)
    runner = CliRunner()
    with stripe_with(events, set(), monkeypatch):
        dry = runner.invoke(cli, ["run", "reconcile", "--since", SINCE.isoformat(), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f'"still_missing": {len(events)}' in dry.output and '"recovered": 0' in dry.output
    section = reconciliation_of(run_audit())  # the audit names the days with events missing
    assert not section.ok
    assert sum(int(p.split(": ")[1].split()[0]) for p in section.problems) == len(events)
    assert all("a dry run" in p for p in section.problems)

    use_api(monkeypatch, f"http://127.0.0.1:{free_port()}")
    down = runner.invoke(cli, ["run", "reconcile", "--since", SINCE.date().isoformat()])
    assert down.exit_code == 1
    assert "could not be listed (APIConnectionError, no HTTP answer)" in down.output
    assert API_KEY not in down.output


@pytest.mark.slow
def test_the_flow_publishes_its_rows_as_a_run_artifact_under_its_run_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # lazy: prefect.testing.utilities adds seconds to the collection of every test here
    from prefect.testing.utilities import prefect_test_harness

    events = simulated(12, seed=9)
    with stripe_with(events, set(), monkeypatch), prefect_test_harness(server_startup_timeout=240):
        summary = reconcile(since=SINCE, dry_run=True)
        artifact = Artifact.get("reconciliation")

    assert summary["still_missing"] == summary["provider_events"] == len(events)
    assert artifact is not None and str(artifact.flow_run_id) == summary["run_id"]
    published = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    assert sum(day["still_missing"] for day in published) == len(events)
    assert rows("SELECT DISTINCT run_id FROM gold.reconciliation") == [(summary["run_id"],)]
