"""``lakehouse receiver`` serves the app with uvicorn and logs JSON lines with request ids."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from lakehouse.supervisor import free_port
from tests.support.stripe import SECRET, encode, make_event, signed_headers

pytestmark = pytest.mark.integration


def _wait_live(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("lakehouse receiver did not start")


def test_cli_serves_the_receiver_and_logs_json(kafka: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lakehouse.cli",
            "receiver",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, proc)
        event = make_event()
        body = encode(event)
        response = httpx.post(
            f"{url}/webhooks/stripe",
            content=body,
            headers=signed_headers(body, **{"x-request-id": "req-cli-1"}),
        )
        assert response.status_code == 200, response.text
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith(b"{")]
    assert any(line["message"] == "receiver stopped" for line in lines)  # graceful: flushed
    webhook = [line for line in lines if line["message"] == "webhook"]
    assert webhook and webhook[0]["request_id"] == "req-cli-1"
    assert webhook[0]["event_id"] == event["id"] and webhook[0]["status"] == 200
    assert any(line["logger"].startswith("uvicorn") for line in lines)
