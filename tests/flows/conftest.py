"""Fixtures for pipeline tests: a private broker with empty topics and a way to deliver bodies."""

from __future__ import annotations

import pytest

from tests.support.broker import Deliveries, KafkaForTest


@pytest.fixture
def deliveries(clean_kafka: KafkaForTest) -> Deliveries:
    """Empty topics on the session broker, with the settings pointing at it."""
    return Deliveries(clean_kafka)
