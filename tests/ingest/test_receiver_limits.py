"""Secure defaults of the receiver: no secret, no start; no docs in production; slow bodies and
too many requests bounded; /metrics on a port of its own; readiness without library error text."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from ingest.receiver import ReceiverConfigError, create_app
from lakehouse import stack
from lakehouse.supervisor import free_port
from settings import DEV_WEBHOOK_SECRET, Settings, get_settings
from tests.support.server import serve
from tests.support.stripe import SECRET, encode, make_event, signed_headers

READ_TIMEOUT_S = 1.0


def test_a_receiver_without_a_configured_secret_refuses_to_start() -> None:
    with pytest.raises(ReceiverConfigError, match="LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"):
        create_app(Settings())


def test_the_receiver_command_without_a_secret_exits_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "receiver", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no webhook secret is configured" in result.stderr
    assert "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS" in result.stderr


def test_only_the_embedded_stack_passes_the_development_secret() -> None:
    receiver = stack.services(Settings())["receiver"]
    assert receiver.env["LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"] == DEV_WEBHOOK_SECRET
    configured = stack.services(Settings(stripe_webhook_secrets=["whsec_a", "whsec_b"]))
    assert configured["receiver"].env["LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"] == "whsec_a,whsec_b"


def test_production_serves_no_api_docs() -> None:
    production = Settings(environment="production", stripe_webhook_secrets=["whsec_live_x"])
    paths = {route.path for route in create_app(production).routes}
    assert not paths & {"/docs", "/openapi.json", "/redoc"}
    assert "/webhooks/stripe" in paths
    development = {
        route.path for route in create_app(Settings(stripe_webhook_secrets=[SECRET])).routes
    }
    assert {"/docs", "/openapi.json"} <= development


@contextmanager
def receiver(monkeypatch: pytest.MonkeyPatch, **settings: str) -> Iterator[str]:
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    for name, value in settings.items():
        monkeypatch.setenv(f"LAKEHOUSE_{name.upper()}", value)
    get_settings.cache_clear()
    with serve(create_app()) as url:
        yield url


@contextmanager
def slow_sender(url: str) -> Iterator[socket.socket]:
    """A webhook whose headers arrive but whose body never completes (holds its request slot)."""
    body = encode(make_event())
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(body).items())
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /webhooks/stripe HTTP/1.1\r\nhost: {host}\r\n{head}"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    try:
        yield sock
    finally:
        sock.close()


@pytest.mark.integration
def test_a_body_slower_than_the_read_timeout_is_answered_408(kafka, monkeypatch) -> None:
    with receiver(monkeypatch, receiver_read_timeout_s=str(READ_TIMEOUT_S)) as url:
        with slow_sender(url) as sock:
            sock.settimeout(READ_TIMEOUT_S + 10)
            answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert '"code":"request_timeout"' in answer


@pytest.mark.integration
def test_beyond_the_concurrency_limit_the_answer_is_503_with_retry_after(
    kafka, monkeypatch
) -> None:
    limits = {"receiver_max_concurrent_requests": "1", "receiver_read_timeout_s": "30"}
    with receiver(monkeypatch, **limits) as url, slow_sender(url):
        time.sleep(0.5)  # the slow request holds the only slot
        body = encode(make_event())
        refused = httpx.post(f"{url}/webhooks/stripe", content=body, headers=signed_headers(body))
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "overloaded"
    assert refused.headers["retry-after"].isdigit()


@pytest.mark.integration
def test_metrics_can_be_served_on_their_own_port(kafka, monkeypatch) -> None:
    port = free_port()
    with receiver(monkeypatch, receiver_metrics_port=str(port)) as url:
        body = encode(make_event())
        httpx.post(f"{url}/webhooks/stripe", content=body, headers=signed_headers(body))
        beside = httpx.get(f"{url}/metrics")
        own = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert beside.status_code == 404
    assert own.status_code == 200 and own.headers["content-type"].startswith("text/plain")
    assert 'lakehouse_receiver_requests_total{outcome="accepted"} 1.0' in own.text
