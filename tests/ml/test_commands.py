"""`lakehouse simulate history`, `lakehouse mlflow` and the train-models flow without a server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from prefect.artifacts import Artifact
from typer.testing import CliRunner

import flows.train_models as training
from flows.train_models import load_silver_history, run_training, summary_markdown
from lakehouse.cli import app
from lakehouse.supervisor import free_port
from simulator.history import generate_history
from tests.support.history import END, ROUNDS, small_silver
from tests.support.mlflow_store import mlflow_store
from warehouse.catalog import get_catalog
from warehouse.io import append, ensure_tables
from warehouse.tables import SILVER_PAYMENT_EVENTS

runner = CliRunner()


def test_history_and_mlflow_commands_are_registered() -> None:
    assert runner.invoke(app, ["simulate", "history", "--help"]).exit_code == 0
    assert runner.invoke(app, ["mlflow", "--help"]).exit_code == 0


@pytest.mark.integration
def test_history_command_writes_every_event_to_the_topics(fresh_broker) -> None:
    broker = fresh_broker()
    args = ["--days", "2", "--customers", "30", "--seed", "5", "--end", "2025-03-01T00:00:00"]
    result = runner.invoke(app, ["simulate", "history", *args, "--direct"])
    assert result.exit_code == 0, result.output
    expected = sum(1 for _ in generate_history(2, 30, None, 5, END))
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "ml-test"})
    try:
        topics = [t for t in consumer.list_topics(timeout=10).topics if t.startswith("webhooks.")]
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in consumer.list_topics(t, timeout=10).topics[t].partitions
        ]
        written = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
    finally:
        consumer.close()
    assert written == expected > 100


def test_train_models_runs_without_a_server(isolated_settings: Path) -> None:
    mlflow_store(isolated_settings)
    run = run_training(small_silver, num_boost_round=ROUNDS)
    assert set(run["models"]) == {"fraud", "retry", "churn"}
    for row in run["models"].values():
        assert row["promoted"] and row["version"] == "1" and row["beats_baseline"]
    assert run["rescore"]["rows_rescored"] == 0  # champions moved; gold is empty here
    markdown = summary_markdown(run["models"], run["rescore"])
    assert "payments-retry" in markdown and "Retry policy" in markdown and "Rescored" in markdown


@pytest.mark.slow
def test_mlflow_command_serves_the_ui_on_localhost(isolated_settings: Path) -> None:
    mlflow_store(isolated_settings)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "mlflow", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert _answers(f"http://127.0.0.1:{port}/health", within_s=240)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the command and the server it started
        server.wait(timeout=60)


def _answers(url: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


@pytest.mark.integration
def test_training_reads_the_last_days_of_silver_from_iceberg(isolated_settings: Path) -> None:
    silver = small_silver()
    table = ensure_tables(get_catalog())[SILVER_PAYMENT_EVENTS.identifier_str]
    append(table, silver.to_arrow(), summary={})
    loaded = load_silver_history(days=30)
    latest = silver["provider_created_at"].max()
    expected = silver.filter(silver["provider_created_at"] >= latest - timedelta(days=30))
    assert loaded.height == expected.height > 1000
    assert {"payment_intent_id", "card_last_four", "metadata"} <= set(loaded.columns)


@pytest.mark.integration
@pytest.mark.slow
def test_train_models_flow_publishes_metrics_against_the_baseline(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # lazy: prefect.testing.utilities adds 2.4 s to every collection of tests/ml (measured)
    from prefect.testing.utilities import prefect_test_harness

    mlflow_store(isolated_settings)
    # stand-in, named: the silver read returns the tests' small labelled history (a real table of
    # it is what tests/production trains from); the flow, MLflow and Prefect server are real
    monkeypatch.setattr(training, "load_silver_history", lambda days: small_silver())
    with prefect_test_harness(server_startup_timeout=240):
        run = training.train_models(history_days=100, num_boost_round=ROUNDS)
        artifact = Artifact.get("train-models")
    assert {row["name"] for row in run["models"].values()} == {
        "payments-fraud",
        "payments-retry",
        "payments-churn",
    }
    assert artifact is not None and "baseline" in (artifact.description or "")
    assert "payments-churn" in str(artifact.data) and "Rescored 0 gold rows" in str(artifact.data)
    assert run["rescore"]["champions"] == {row["name"]: "1" for row in run["models"].values()}
