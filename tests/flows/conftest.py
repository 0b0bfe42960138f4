"""Fixtures for pipeline tests: a private broker with empty topics and a way to deliver bodies,
or, for stages that need no broker, the warm context on a temp warehouse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.context import Lakehouse
from tests.support.broker import Deliveries, KafkaForTest


@pytest.fixture
def deliveries(clean_kafka: KafkaForTest) -> Deliveries:
    """Empty topics on the session broker, with the settings pointing at it."""
    return Deliveries(clean_kafka)


@pytest.fixture
def lh() -> Iterator[Lakehouse]:
    """The stages' context on this test's own warehouse (no broker: bronze is landed directly,
    ``tests.support.landing``)."""
    lakehouse = Lakehouse()
    yield lakehouse
    lakehouse.close()
