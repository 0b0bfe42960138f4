"""Simulated deliveries over HTTP: rate and concurrency, and end to end through the receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ingest import topics
from ingest.receiver import create_app
from lakehouse.cli import app
from lakehouse.supervisor import free_port
from settings import get_settings
from simulator.send import send_payloads
from simulator.stream import generate_payloads
from tests.support.broker import TopicTail, headers_of
from tests.support.server import serve
from tests.support.stripe import SECRET

runner = CliRunner()


def test_send_payloads_keeps_the_rate_and_the_concurrency_limit_and_counts_by_status() -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        assert request.headers["stripe-signature"].startswith("t=")
        return httpx.Response(400 if b"bad" in request.content else 202)

    bodies = [b'{"ok": 1}'] * 18 + [b"bad"] * 2
    began = time.perf_counter()
    summary = asyncio.run(
        send_payloads(
            bodies,
            "http://sim/webhooks/stripe",
            "whsec_x",
            rate=100,
            concurrency=3,
            transport=httpx.MockTransport(handler),
        )
    )
    assert time.perf_counter() - began >= 0.19  # 20 deliveries at 100/s
    assert peak <= 3
    assert summary.by_status == {"202": 18, "400": 2} and summary.accepted == 18
    assert summary.latency_ms(0.99) >= 50


def test_generate_exits_1_and_reports_the_error_when_the_receiver_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/stripe"
    result = runner.invoke(
        app, ["simulate", "generate", "--count", "3", "--rate", "0", "--url", url, "--seed", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "error:ConnectError" in result.output


@pytest.fixture
def receiver(kafka: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real receiver served by uvicorn on a free port, writing to the shared broker."""
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    get_settings.cache_clear()
    with serve(create_app()) as base:
        yield f"{base}/webhooks/stripe"


@pytest.mark.integration
def test_generate_sends_the_seeded_stream_through_the_receiver_into_the_topics(
    kafka: str, receiver: str
) -> None:
    count, seed = 60, 12
    tail = TopicTail(kafka, topics.ALL_TOPICS)
    try:
        result = runner.invoke(
            app,
            [
                "simulate",
                "generate",
                "--count",
                str(count),
                "--rate",
                "0",
                "--url",
                receiver,
                "--seed",
                str(seed),
                "--malformed-fraction",
                "0.1",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "responses by status" in result.output and f"{count:,} accepted" in result.output
        assert tail.written() == count  # before collect: watermarks are slow once consuming
        messages = tail.collect(lambda m: True, count)
    finally:
        tail.close()
    # the CLI stamps the stream with the current time; ids and breakage follow the seed alone
    payloads = list(generate_payloads(count, seed, malformed_fraction=0.1))
    dlq_kinds = {"not_json", "missing_id", "missing_type"}
    expected_ids = {orjson.loads(p.body)["id"] for p in payloads if p.malformed not in dlq_kinds}
    assert {headers_of(m).get("event-id") for m in messages if m.topic() != topics.DLQ} == (
        expected_ids
    )
    assert sum(m.topic() == topics.DLQ for m in messages) == sum(
        p.malformed in dlq_kinds for p in payloads
    )
    for msg in messages:
        headers = headers_of(msg)
        if "dlq-reason" in headers:
            assert msg.topic() == topics.DLQ
            continue
        event = orjson.loads(msg.value())
        assert msg.topic() == topics.route(event["type"]) and headers["event-id"] == event["id"]
        assert msg.key().decode() == topics.message_key(event)


@pytest.mark.integration
def test_send_is_accepted_when_signed_and_refused_400_with_an_invalid_signature(
    kafka: str, receiver: str
) -> None:
    tail = TopicTail(kafka, topics.ALL_TOPICS)
    try:
        ok = runner.invoke(
            app,
            [
                "simulate",
                "send",
                "--type",
                "charge.dispute.created",
                "--url",
                receiver,
                "--secret",
                SECRET,
            ],
        )
        assert ok.exit_code == 0, ok.output
        assert "charge.dispute.created" in ok.output and "-> 2" in ok.output

        bad = runner.invoke(
            app, ["simulate", "send", "--invalid-signature", "--url", receiver, "--secret", SECRET]
        )
        assert bad.exit_code == 0, bad.output
        assert "-> 400" in bad.output
        assert tail.written() == 1  # the refused delivery wrote nothing
        [msg] = tail.collect(lambda m: True, 1)
        assert msg.topic() == topics.DISPUTE
    finally:
        tail.close()
