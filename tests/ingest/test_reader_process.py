"""The broker reader in its child process, on the real broker: the same batches as in-process,
positioned by what bronze recorded, lag that counts what was read ahead, and no orphan child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from ingest import topics
from ingest.consumer import partition_key
from ingest.messages import build_message
from ingest.reader_process import ReaderProcess, ReaderProcessError
from settings import get_settings
from simulator.events import make_stripe_event
from tests.support.broker import read_rows

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _send(kafka, count: int, partition: int = 0) -> list[bytes]:
    """``count`` receiver messages into one partition of the payment-intent topic."""
    producer = Producer({"bootstrap.servers": kafka.broker.bootstrap, "acks": "all"})
    bodies = []
    for i in range(count):
        body = orjson.dumps(make_stripe_event("payment_intent.succeeded"))
        msg = build_message(body, datetime.now(UTC), f"req_{i}")
        producer.produce(
            msg.topic, key=msg.key, value=body, headers=msg.headers, partition=partition
        )
        bodies.append(body)
    assert producer.flush(30) == 0
    return bodies


def _reader(recorded=dict) -> ReaderProcess:
    settings = get_settings()
    return ReaderProcess(
        settings.kafka_client_config(),
        settings.consumer_group,
        recorded_offsets=recorded,
        session_timeout_ms=6000,
    )


def _start_offset(kafka) -> int:
    (start,) = [
        tp.offset
        for tp in kafka.start_offsets
        if (tp.topic, tp.partition) == (topics.PAYMENT_INTENT, 0)
    ]
    return start


def test_batches_come_back_whole_with_their_offsets(clean_kafka) -> None:
    bodies = _send(clean_kafka, 25)
    rows, offsets = read_rows(_reader(), 25, max_records=10)

    assert [r["payload"] for r in rows] == [b.decode() for b in bodies]  # one partition: in order
    assert {r["topic"] for r in rows} == {topics.PAYMENT_INTENT}
    start = _start_offset(clean_kafka)
    assert [r["offset"] for r in rows] == list(range(start, start + 25))
    assert offsets == {partition_key(topics.PAYMENT_INTENT, 0): start + 25}


def test_on_assignment_the_child_asks_the_parent_where_bronze_stopped(clean_kafka) -> None:
    _send(clean_kafka, 10)
    start = _start_offset(clean_kafka)
    asked = []

    def recorded() -> dict[str, int]:
        asked.append(True)
        return {partition_key(topics.PAYMENT_INTENT, 0): start + 6}  # bronze has six already

    reader = _reader(recorded)
    try:
        batch = reader.poll_batch(100, 10.0)
    finally:
        reader.close()

    assert asked, "the child never asked for the recorded offsets"
    assert batch.rows.column("offset").to_pylist() == list(range(start + 6, start + 10))


def test_when_bronze_cannot_say_where_it_stopped_the_poll_fails_instead_of_hanging(
    clean_kafka,
) -> None:
    _send(clean_kafka, 3)

    def unknown() -> dict[str, int]:
        raise OSError("catalog unreachable")

    reader = _reader(unknown)
    try:
        started = time.monotonic()
        with pytest.raises(OSError, match="catalog unreachable"):
            reader.poll_batch(10, 5.0)
        assert time.monotonic() - started < 60
        assert reader.lag() == {}  # the pipe is in step: this answer is the lag's, not the poll's
    finally:
        reader.close()


def test_lag_counts_a_batch_read_ahead_but_not_handed_over(clean_kafka) -> None:
    _send(clean_kafka, 30)
    reader = _reader()
    try:
        assert reader.poll_batch(10, 10.0).size == 10
        time.sleep(2)  # the child reads the next batch ahead meanwhile
        assert reader.lag()[topics.PAYMENT_INTENT] == 20
        assert reader.poll_batch(10, 10.0).size == 10  # the batch read ahead
        assert reader.lag()[topics.PAYMENT_INTENT] == 10
    finally:
        reader.close()


def test_a_dead_child_is_reported_not_waited_for(clean_kafka) -> None:
    reader = _reader()
    os.kill(reader.pid, signal.SIGKILL)
    with pytest.raises(ReaderProcessError, match="exited"):
        reader.poll_batch(10, 1.0)
    reader.close()


def test_the_child_ends_when_its_parent_is_killed(clean_kafka, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from ingest.reader_process import ReaderProcess
        reader = ReaderProcess({{"bootstrap.servers": "{clean_kafka.broker.bootstrap}"}},
                               "{clean_kafka.group}", recorded_offsets=dict)
        reader.poll_batch(10, 1.0)
        print(reader.pid, flush=True)
        import time
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    deadline = time.monotonic() + 20
    while _alive(child):
        assert time.monotonic() < deadline, "the reader child outlived its parent"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited (its parent, now init, reaps it)
