"""Session fixtures: a real Kafka-API broker on free ports, a real Prefect server (started when a
test asks for it), and settings isolated per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.broker import LocalBroker
from lakehouse.supervisor import free_port
from settings import get_settings
from settings.config import S3_CHECKSUM_VARIABLES, S3_CLIENT_VARIABLES
from tests.support.broker import KafkaForTest, commit_group_offsets, end_offsets_of
from tests.support.prefect import LocalPrefect, running_prefect

REPO = Path(__file__).resolve().parent.parent
#: Broker jars are fetched once per checkout and shared by every test broker.
JAR_CACHE = REPO / ".lakehouse" / "cache"
JAR_CACHE.mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own LAKEHOUSE_HOME and no LAKEHOUSE_* variable from the outside, and
    the AWS variables a test's S3 settings put in the environment are removed after it."""
    for name in list(os.environ):
        if name.startswith("LAKEHOUSE_"):
            monkeypatch.delenv(name)
    for name in (*S3_CHECKSUM_VARIABLES, *S3_CLIENT_VARIABLES):  # export_s3_environment's
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    home = tmp_path / "lakehouse-home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _start_broker(root: Path) -> LocalBroker:
    broker = LocalBroker(
        data_dir=root,
        cache_dir=JAR_CACHE,
        port=free_port(),
        controller_port=free_port(),
        heap="384m",
        partitions=3,
    )
    broker.start()
    return broker


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One real broker for the whole session; tests must not assume empty topics."""
    broker = _start_broker(tmp_path_factory.mktemp("broker"))
    yield broker
    broker.stop()


@pytest.fixture
def kafka(session_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shared broker's bootstrap address, also set as LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS."""
    monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", session_broker.bootstrap)
    get_settings.cache_clear()
    return session_broker.bootstrap


@pytest.fixture
def fresh_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], LocalBroker]]:
    """Start a private broker with empty topics (for tests that stop it or count everything)."""
    started: list[LocalBroker] = []

    def start() -> LocalBroker:
        broker = _start_broker(tmp_path / f"broker-{len(started)}")
        started.append(broker)
        monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
        get_settings.cache_clear()
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def clean_kafka(session_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> KafkaForTest:
    """The session broker through a consumer group of this test's own that starts at the current
    end of every topic, so the loader sees only what this test writes."""
    group = f"test-{uuid.uuid4().hex[:12]}"
    start = end_offsets_of(session_broker.bootstrap)
    commit_group_offsets(session_broker.bootstrap, group, start)
    monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", session_broker.bootstrap)
    monkeypatch.setenv("LAKEHOUSE_CONSUMER_GROUP", group)
    get_settings.cache_clear()
    return KafkaForTest(session_broker, group, start)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefect]:
    """One Prefect server on 127.0.0.1 for the session, started by the first test that needs it."""
    with running_prefect(tmp_path_factory.mktemp("prefect")) as server:
        yield server
