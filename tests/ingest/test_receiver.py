"""The receiver on the real broker: routing, DLQ, refusals that write nothing, observability."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest import topics
from ingest.logs import JsonFormatter
from ingest.receiver import create_app
from ingest.responses import WebhookAccepted
from settings import get_settings
from tests.support.broker import TopicTail, headers_of
from tests.support.server import serve
from tests.support.stripe import JSON, OLD_SECRET, SECRET, encode, make_event, sign, signed_headers

pytestmark = pytest.mark.integration

MAX_BODY = 32_768


@pytest.fixture
def client(kafka: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """An HTTP client of a receiver served by uvicorn, writing to the shared broker."""
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", f"{SECRET},{OLD_SECRET}")
    monkeypatch.setenv("LAKEHOUSE_RECEIVER_MAX_BODY_BYTES", str(MAX_BODY))
    get_settings.cache_clear()
    with serve(create_app()) as url, httpx.Client(base_url=url, timeout=15) as http:
        yield http


@pytest.fixture
def tail(kafka: str) -> Iterator[TopicTail]:
    """Everything written to any topic from now on."""
    tail = TopicTail(kafka, topics.ALL_TOPICS)
    yield tail
    tail.close()


def post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/webhooks/stripe", content=body, headers=signed_headers(body, **headers))


ROUTES = [
    ("payment_intent.succeeded", topics.PAYMENT_INTENT),
    ("payment_intent.payment_failed", topics.PAYMENT_INTENT),
    ("charge.succeeded", topics.CHARGE),
    ("charge.failed", topics.CHARGE),
    ("charge.refunded", topics.REFUND),
    ("charge.refund.updated", topics.REFUND),
    ("refund.created", topics.REFUND),
    ("charge.dispute.created", topics.DISPUTE),
    ("charge.dispute.closed", topics.DISPUTE),
    ("customer.created", topics.OTHER),
]


def test_every_event_type_lands_in_its_topic_with_key_value_and_headers(
    client: httpx.Client, tail: TopicTail
) -> None:
    sent: dict[str, tuple[bytes, str, str, str]] = {}  # event id -> body, topic, key, request id
    for i, (event_type, topic) in enumerate(ROUTES):
        event = make_event(event_type)
        if i % 3 == 0:
            event["account"] = f"acct_{i}"  # Connect: the account is the merchant
        elif i % 3 == 1:
            event["data"]["object"]["metadata"] = {}  # no merchant: keyed by event id
        key = event.get("account") or event["data"]["object"]["metadata"].get("merchant_id")
        body = encode(event)
        charset = {"content-type": f"{JSON}; charset=utf-8"} if i % 2 else {}
        response = post(client, body, **charset)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == set(WebhookAccepted.model_fields)
        assert answer["event_id"] == event["id"] and answer["topic"] == topic
        assert response.headers["x-request-id"] == answer["request_id"]
        sent[event["id"]] = (body, topic, key or event["id"], answer["request_id"])

    found = tail.collect(lambda m: headers_of(m).get(topics.H_EVENT_ID) in sent, len(sent))
    assert len(found) == len(sent)
    for msg in found:
        h = headers_of(msg)
        body, topic, key, request_id = sent[h[topics.H_EVENT_ID]]
        assert (msg.topic(), msg.key().decode(), msg.value()) == (topic, key, body)
        assert h[topics.H_PROVIDER] == "stripe"
        assert h[topics.H_EVENT_TYPE] == orjson.loads(body)["type"]
        assert h[topics.H_REQUEST_ID] == request_id
        received_at = datetime.fromisoformat(h[topics.H_RECEIVED_AT])
        assert received_at.utcoffset() is not None and received_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "INVALID_JSON"),
        (b'["a", "list"]', "INVALID_JSON"),
        (b'{"type": "charge.succeeded", "data": {}}', "MISSING_EVENT_ID"),
        (b'{"id": "evt_test_no_type", "data": {}}', "MISSING_EVENT_TYPE"),
    ],
)
def test_verified_but_unroutable_deliveries_are_answered_2xx_and_land_in_the_dlq(
    client: httpx.Client, tail: TopicTail, body: bytes, reason: str
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    response = post(client, body, **{"x-request-id": request_id})
    assert response.status_code == 200, response.text
    assert response.json()["dlq_reason"] == reason
    assert response.json()["topic"] == topics.DLQ

    found = tail.collect(lambda m: headers_of(m).get(topics.H_REQUEST_ID) == request_id, 1)
    assert len(found) == 1
    assert found[0].topic() == topics.DLQ and found[0].value() == body
    assert headers_of(found[0])[topics.H_DLQ_REASON] == reason


def test_a_delivery_signed_with_the_previous_secret_is_accepted(client: httpx.Client) -> None:
    body = encode(make_event())
    response = post(client, body, **{"stripe-signature": sign(body, OLD_SECRET)})
    assert response.status_code == 200, response.text


def _bad_signatures(body: bytes) -> list[tuple[dict[str, str], str]]:
    now = int(time.time())
    return [
        ({}, "missing_signature"),
        ({"stripe-signature": "v1=" + "0" * 64}, "malformed_signature"),
        ({"stripe-signature": f"t={now},v0=" + "0" * 64}, "malformed_signature"),
        ({"stripe-signature": sign(body, "whsec_wrong")}, "no_matching_signature"),
        ({"stripe-signature": sign(body + b" ", SECRET)}, "no_matching_signature"),
        ({"stripe-signature": sign(body, SECRET, now - 400)}, "timestamp_outside_tolerance"),
        ({"stripe-signature": sign(body, SECRET, now + 400)}, "timestamp_outside_tolerance"),
    ]


def test_bad_signatures_get_400_with_their_code_and_nothing_is_written(
    client: httpx.Client, tail: TopicTail
) -> None:
    body = encode(make_event())
    for headers, code in _bad_signatures(body):
        response = client.post(
            "/webhooks/stripe", content=body, headers={"content-type": JSON, **headers}
        )
        assert response.status_code == 400, (code, response.text)
        assert response.json()["error"]["code"] == code
    assert tail.written() == 0


def test_json_nested_too_deep_is_refused_after_verification_and_not_written(
    client: httpx.Client, tail: TopicTail
) -> None:
    depth = get_settings().receiver_max_json_depth + 1
    body = b'{"id":"evt_deep","type":"charge.succeeded","x":' + b"[" * depth + b"]" * depth + b"}"
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_too_deep"
    assert "verified" in response.json()["error"]["message"]
    assert tail.written() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_other_content_types_get_415_and_nothing_is_written(
    client: httpx.Client, tail: TopicTail, content_type: str
) -> None:
    body = encode(make_event())
    response = post(client, body, **{"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert tail.written() == 0


def test_bodies_over_the_limit_get_413_by_length_or_while_streaming_and_nothing_is_written(
    client: httpx.Client, tail: TopicTail
) -> None:
    event = make_event()
    event["padding"] = "x" * MAX_BODY
    body = encode(event)
    declared = post(client, body)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))  # chunked: no Content-Length
    streamed = client.post("/webhooks/stripe", content=chunks, headers=signed_headers(body))
    assert streamed.status_code == 413
    assert tail.written() == 0


def test_request_id_is_taken_from_the_caller_or_generated_and_echoed(client: httpx.Client) -> None:
    body = encode(make_event())
    given = post(client, body, **{"x-request-id": "req-from-caller-1"})
    assert given.headers["x-request-id"] == "req-from-caller-1"
    assert given.json()["request_id"] == "req-from-caller-1"
    unsafe = client.get("/health/live", headers={"x-request-id": "x" * 500})
    assert len(unsafe.headers["x-request-id"]) == 32


def test_metrics_count_requests_by_outcome_latency_and_in_flight(client: httpx.Client) -> None:
    post(client, encode(make_event()))
    post(client, b"not json")
    client.post("/webhooks/stripe", content=b"{}", headers={"content-type": JSON})
    client.post("/webhooks/stripe", content=b"{}", headers={"content-type": "text/plain"})

    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    for outcome in ("accepted", "dlq", "missing_signature", "unsupported_media_type"):
        assert samples[("lakehouse_receiver_requests_total", outcome)] == 1
    assert samples[("lakehouse_receiver_request_duration_seconds_count", None)] == 4
    assert samples[("lakehouse_receiver_in_flight_requests", None)] == 0


def test_health_and_docs_answer(client: httpx.Client) -> None:
    assert client.get("/health/live").json()["status"] == "ok"
    assert client.get("/health/ready").status_code == 200
    assert client.get("/docs").status_code == 200
    webhook = client.get("/openapi.json").json()["paths"]["/webhooks/stripe"]["post"]
    assert "application/json" in webhook["requestBody"]["content"]
    assert {"200", "400", "413", "415", "503"} <= set(webhook["responses"])


def test_logs_are_json_with_the_request_id_and_never_the_payload_or_secrets(
    client: httpx.Client,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ingest")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        event = make_event(description="PAYLOAD-MARKER-4242")
        body = encode(event)
        header = sign(body, SECRET)
        post(client, body, **{"x-request-id": "req-log-1", "stripe-signature": header})
        post(client, body, **{"x-request-id": "req-log-2", "stripe-signature": header + "0"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = stream.getvalue()
    lines = [orjson.loads(line) for line in text.splitlines()]
    by_request = {line.get("request_id"): line for line in lines if line["message"] == "webhook"}
    assert by_request["req-log-1"]["outcome"] == "accepted"
    assert by_request["req-log-1"]["event_id"] == event["id"]
    assert by_request["req-log-2"]["outcome"] == "no_matching_signature"
    for secret_or_payload in ("PAYLOAD-MARKER-4242", SECRET, OLD_SECRET, header.split("v1=")[1]):
        assert secret_or_payload not in text
