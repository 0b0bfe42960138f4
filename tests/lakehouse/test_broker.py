"""The embedded broker: start/stop/status via the CLI, data kept across restarts, clear errors."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from ingest.offsets import end_offsets, per_topic
from ingest.topics import ALL_TOPICS, PAYMENT_INTENT
from lakehouse.broker import BrokerError, LocalBroker
from lakehouse.cli import app
from lakehouse.supervisor import free_port
from settings import get_settings
from tests.conftest import JAR_CACHE

pytestmark = pytest.mark.integration
runner = CliRunner()


def _use_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_BROKER_PORT", str(free_port()))
    monkeypatch.setenv("LAKEHOUSE_BROKER_CONTROLLER_PORT", str(free_port()))
    monkeypatch.setenv("LAKEHOUSE_BROKER_HEAP", "384m")
    get_settings.cache_clear()


def test_cli_start_creates_topics_status_reports_offsets_and_data_survives_restart(
    monkeypatch: pytest.MonkeyPatch, isolated_settings
) -> None:
    _use_ports(monkeypatch)
    # share the checkout's jar cache instead of fetching again into the temporary home
    (isolated_settings / "cache").parent.mkdir(parents=True, exist_ok=True)
    (isolated_settings / "cache").symlink_to(JAR_CACHE)
    settings = get_settings()
    try:
        result = runner.invoke(app, ["broker", "start"])
        assert result.exit_code == 0, result.output
        assert settings.bootstrap_servers in result.output
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
        for i in range(3):
            producer.produce(PAYMENT_INTENT, key=b"acct_1", value=f"event {i}".encode())
        assert producer.flush(10) == 0

        status = runner.invoke(app, ["broker", "status"])
        assert status.exit_code == 0, status.output
        assert "running" in status.output and PAYMENT_INTENT in status.output

        assert runner.invoke(app, ["broker", "stop"]).exit_code == 0
        stopped = runner.invoke(app, ["broker", "status"])
        assert stopped.exit_code == 1 and "not running" in stopped.output

        assert runner.invoke(app, ["broker", "start"]).exit_code == 0
        offsets = per_topic(end_offsets(settings.kafka_client_config(), ALL_TOPICS))
        assert set(offsets) == set(ALL_TOPICS)
        assert offsets[PAYMENT_INTENT] == 3
    finally:
        runner.invoke(app, ["broker", "stop"])


def test_start_refuses_a_taken_port_in_one_line(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        broker = LocalBroker(tmp_path, JAR_CACHE, port=taken, controller_port=free_port())
        with pytest.raises(BrokerError, match=f"port {taken} .* is taken"):
            broker.start()


def test_external_broker_setting_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", "redpanda-0:9092")
    get_settings.cache_clear()
    result = runner.invoke(app, ["broker", "start"])
    assert result.exit_code == 0
    assert "nothing to start" in result.output
