"""Fixtures for pipeline tests: a private broker with empty topics and a way to deliver bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from ingest.messages import OutgoingMessage, build_message
from tests.conftest import KafkaForTest


@dataclass
class Deliveries:
    """Writes webhook bodies to the broker exactly as the receiver would."""

    kafka: KafkaForTest

    def send(self, bodies: list[bytes | dict]) -> list[OutgoingMessage]:
        producer = Producer(
            {
                "bootstrap.servers": self.kafka.broker.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        sent = []
        for i, body in enumerate(bodies):
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
            msg = build_message(raw, datetime.now(UTC), f"req_test_{i}")
            producer.produce(msg.topic, key=msg.key, value=msg.value, headers=msg.headers)
            sent.append(msg)
        assert producer.flush(30) == 0, "the broker did not acknowledge every delivery"
        return sent


@pytest.fixture
def deliveries(clean_kafka: KafkaForTest) -> Deliveries:
    """Empty topics on the session broker, with the settings pointing at it."""
    return Deliveries(clean_kafka)
