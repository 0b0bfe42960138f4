"""The receiver's OpenAPI document tells the truth: schemathesis (a real API fuzzer) generates
requests from it against the served receiver and checks every answer against it — no 5xx, every
status code, content type and header documented, bodies matching their schemas.

Bounded and repeatable: a fixed number of examples per operation, derandomized (a fixed seed).
Checks left out: ``positive_data_acceptance`` (a schema-valid signature is still a wrong one: 400
is the right answer, not 2xx).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from ingest.receiver import create_app
from settings import Settings, get_settings
from tests.support.server import serve
from tests.support.stripe import SECRET

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 40


def _document() -> dict:
    """What the receiver serves at /openapi.json (the app builds it from the same routes)."""
    settings = Settings(stripe_webhook_secrets=[SECRET])
    return create_app(settings).openapi()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def receiver_url(kafka: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A receiver served by uvicorn, writing to the shared broker."""
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", SECRET)
    get_settings.cache_clear()
    with serve(create_app()) as url:
        served = httpx.get(f"{url}/openapi.json").json()
        assert served == _document()  # the document fuzzed is the one served
        yield url


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_is_documented(receiver_url: str, case: schemathesis.Case) -> None:
    case.call_and_validate(base_url=receiver_url, excluded_checks=[positive_data_acceptance])


def test_the_document_names_every_status_and_content_type_of_the_webhook_route() -> None:
    document = _document()
    operation = document["paths"]["/webhooks/stripe"]["post"]
    assert set(operation["responses"]) == {"200", "400", "408", "413", "415", "500", "503"}
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    [signature] = [p for p in operation["parameters"] if p["name"] == "Stripe-Signature"]
    assert signature["required"] and signature["schema"]["pattern"].startswith("^t=")
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert set(metrics["content"]) == {"text/plain"}
