"""The broker reader in its child process, on the real broker: the same batches as in-process,
each read from where bronze stands (a batch read ahead past one that never reached bronze is
thrown away), lag that counts what was read ahead, a dead child replaced, and no orphan child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from confluent_kafka import Producer

from ingest import topics
from ingest.consumer import partition_key
from ingest.messages import build_message
from ingest.reader_process import ReaderProcess, ReaderProcessError, _Child, _read_frame
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


def _reader() -> ReaderProcess:
    settings = get_settings()
    return ReaderProcess(
        settings.kafka_client_config(), settings.consumer_group, session_timeout_ms=6000
    )


PI0 = partition_key(topics.PAYMENT_INTENT, 0)


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


def test_each_poll_starts_where_bronze_says(clean_kafka) -> None:
    _send(clean_kafka, 10)
    start = _start_offset(clean_kafka)
    reader = _reader()
    try:
        batch = reader.poll_batch(100, 10.0, {PI0: start + 6})  # bronze has six already
    finally:
        reader.close()

    assert batch.rows.column("offset").to_pylist() == list(range(start + 6, start + 10))
    assert batch.start_offsets[PI0] == start + 6
    assert batch.next_offsets == {PI0: start + 10}


def test_a_batch_read_ahead_past_one_that_never_reached_bronze_is_thrown_away(
    clean_kafka,
) -> None:
    _send(clean_kafka, 30)
    start = _start_offset(clean_kafka)
    reader = _reader()
    try:
        first = reader.poll_batch(10, 10.0, {})  # nothing recorded: from the group's start
        time.sleep(2)  # the child reads the next batch ahead meanwhile
        # the first batch never reached bronze (its commit failed): the retry asks again
        again = reader.poll_batch(10, 10.0, {})
        time.sleep(2)
        # now bronze recorded it: the batch read ahead (after it) is the right one
        after = reader.poll_batch(10, 10.0, {PI0: start + 10})
    finally:
        reader.close()

    offsets = list(range(start, start + 10))
    assert first.rows.column("offset").to_pylist() == offsets
    assert again.rows.column("offset").to_pylist() == offsets
    assert again.start_offsets[PI0] == start
    assert after.rows.column("offset").to_pylist() == list(range(start + 10, start + 20))


def test_a_read_ahead_that_failed_is_dropped_and_never_raised_again(clean_kafka) -> None:
    """The child's side in this process, its reader on the real broker. Stand-in: the failed
    read ahead is a future holding an exception (a broker error cannot be produced on cue)."""
    _send(clean_kafka, 20)
    start = _start_offset(clean_kafka)
    to_child, out = os.pipe(), os.pipe()
    child = _Child(os.fdopen(to_child[0], "rb"), os.fdopen(out[1], "wb", buffering=0))
    answers = os.fdopen(out[0], "rb")
    settings = get_settings()
    start_request = {
        "op": "start",
        "client_config": settings.kafka_client_config(),
        "group_id": settings.consumer_group,
        "session_timeout_ms": 6000,
        "instance_id": None,
    }
    try:
        child._answer(start_request)
        assert _read_frame(answers)[0]["op"] == "ok"
        batches = []
        for _ in range(2):
            failed: Future = Future()
            failed.set_exception(RuntimeError("stand-in: broker error while consuming"))
            child._ahead = failed
            child._answer({"op": "poll", "max_records": 10, "max_seconds": 10.0, "expected": {}})
            header, body = _read_frame(answers)
            assert header["op"] == "batch", header
            batches.append(pa.ipc.open_stream(body).read_all().column("offset").to_pylist())
    finally:
        child._shut()

    assert batches == [list(range(start, start + 10))] * 2  # read afresh, from bronze's start


def test_lag_counts_a_batch_read_ahead_but_not_handed_over(clean_kafka) -> None:
    _send(clean_kafka, 30)
    start = _start_offset(clean_kafka)
    reader = _reader()
    try:
        assert reader.poll_batch(10, 10.0, {}).size == 10
        time.sleep(2)  # the child reads the next batch ahead meanwhile
        assert reader.lag()[topics.PAYMENT_INTENT] == 20
        assert reader.poll_batch(10, 10.0, {PI0: start + 10}).size == 10  # the batch read ahead
        assert reader.lag()[topics.PAYMENT_INTENT] == 10
    finally:
        reader.close()


def test_a_dead_child_is_reported_then_replaced_on_the_next_poll(clean_kafka) -> None:
    _send(clean_kafka, 5)
    start = _start_offset(clean_kafka)
    reader = _reader()
    try:
        os.kill(reader.pid, signal.SIGKILL)
        with pytest.raises(ReaderProcessError, match="exited"):
            reader.poll_batch(10, 1.0, {})
        batch = reader.poll_batch(10, 10.0, {PI0: start + 2})  # a new child joins the group
    finally:
        reader.close()

    assert batch.rows.column("offset").to_pylist() == list(range(start + 2, start + 5))


def test_the_child_ends_when_its_parent_is_killed(clean_kafka, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from ingest.reader_process import ReaderProcess
        reader = ReaderProcess({{"bootstrap.servers": "{clean_kafka.broker.bootstrap}"}},
                               "{clean_kafka.group}")
        reader.poll_batch(10, 1.0, {{}})
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
