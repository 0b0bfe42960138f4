"""The reconcile client's requests, checked by Stripe's own ``stripe-mock`` (``make stripe-mock``
installs it from the Go module proxy): it validates every request against Stripe's OpenAPI
specification and answers 400 to one the Events API does not accept. It serves fixed fixtures,
not chosen events: the stand-in (``tests/support/stripe_standin.py``) does that."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import stripe

from ingest.stripe_events import events_client, list_events
from lakehouse.supervisor import free_port
from settings import get_settings

pytestmark = pytest.mark.integration
STRIPE_MOCK = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "stripe-mock"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def stripe_mock() -> Iterator[str]:
    """stripe-mock on a free port; its base URL."""
    if not STRIPE_MOCK.is_file():
        pytest.skip("stripe-mock is not installed: make stripe-mock")
    port = free_port()
    process = subprocess.Popen(
        [str(STRIPE_MOCK), "-http-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("stripe-mock exited at start")
        try:
            httpx.get(f"{url}/v1/events", auth=("sk_test_mock", ""), timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("stripe-mock did not answer within 30 s")


@pytest.fixture
def client(stripe_mock: str, monkeypatch: pytest.MonkeyPatch) -> stripe.StripeClient:
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_KEY", "sk_test_mock")
    monkeypatch.setenv("LAKEHOUSE_STRIPE_API_BASE", stripe_mock)
    monkeypatch.setenv("LAKEHOUSE_STRIPE_MAX_NETWORK_RETRIES", "0")
    get_settings.cache_clear()
    return events_client(get_settings())


@pytest.mark.parametrize(
    ("failed_only", "types"),
    [(False, ()), (True, ()), (False, ("charge.succeeded", "payment_intent.payment_failed"))],
    ids=["all", "delivery-failed", "types"],
)
def test_stripe_mock_accepts_every_listing_the_client_makes(
    client: stripe.StripeClient, failed_only: bool, types: tuple[str, ...]
) -> None:
    # stripe-mock's fixture events were created in 2009: outside the window, so none is kept;
    # what matters is that the request passed its validation (a refused one raises)
    table = list_events(client, NOW - timedelta(days=3), NOW, failed_only=failed_only, types=types)
    assert table.num_rows == 0


def test_stripe_mock_refuses_a_request_the_events_api_does_not_take(
    client: stripe.StripeClient,
) -> None:
    # the check above would be empty if stripe-mock accepted anything: it does not
    with pytest.raises(stripe.InvalidRequestError, match="delivery_success"):
        client.v1.events.list({"delivery_success": "sometimes"})  # type: ignore[typeddict-item]


def test_a_starting_after_cursor_with_the_filters_is_valid_for_stripe_mock(
    client: stripe.StripeClient,
) -> None:
    params = {"limit": 1, "created": {"gte": 1}, "delivery_success": False}
    first = client.v1.events.list(params)  # type: ignore[arg-type]
    cursor = first.data[0].id
    page = client.v1.events.list({**params, "starting_after": cursor})  # type: ignore[typeddict-item]
    assert page.object == "list"
