"""The scoring API's endpoints: answers with the model name and version, errors as JSON with a
code (a refused body included), an unknown customer answered from no history, health, and an
OpenAPI document with examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ml.metrics import CANDIDATE_DELAYS_H
from ml.names import CHURN, FRAUD, MODEL_NAMES, RETRY
from ml.recovery import NEW_CARD_PRIOR
from serving.events import CHURN_PATH, FRAUD_PATH, RECOVERY_PATH, RETRY_PATH
from tests.serving.conftest import recent_silver

PATHS = (FRAUD_PATH, RETRY_PATH, CHURN_PATH, RECOVERY_PATH)


def payment(**overrides: object) -> dict:
    """A payment of a customer of the small history, an hour after its newest event."""
    silver = recent_silver()
    newest = silver["provider_created_at"].max()
    row = silver.filter(silver["customer_id"].is_not_null()).row(-1, named=True)
    body = {
        "merchant_id": row["merchant_id"],
        "customer_id": row["customer_id"],
        "amount_minor": 2500,
        "currency": "usd",
        "card": {"brand": "Visa", "last4": "4242", "country": "us"},
        "customer_country": "US",
        "order_id": "ord_test_1",
        "created_at": (newest + timedelta(hours=1)).isoformat(),
    }
    return {**body, **overrides}


def body_for(path: str, **overrides: object) -> dict:
    if path == CHURN_PATH:
        return {"customer_id": payment()["customer_id"], "payment": payment(**overrides)}
    if path in (RETRY_PATH, RECOVERY_PATH):
        return {**payment(**overrides), "decline_code": "insufficient_funds"}
    return payment(**overrides)


@pytest.mark.integration
def test_each_endpoint_answers_with_its_model_name_and_version(client) -> None:
    fraud = client.post(FRAUD_PATH, json=body_for(FRAUD_PATH)).json()
    assert 0 <= fraud["fraud_score"] <= 1 and fraud["model"]["name"] == FRAUD
    retry = client.post(RETRY_PATH, json=body_for(RETRY_PATH)).json()
    assert [c["delay_hours"] for c in retry["candidates"]] == list(CANDIDATE_DELAYS_H)
    best = max(retry["candidates"], key=lambda c: c["success_probability"])
    assert retry["recommended_delay_hours"] == best["delay_hours"]
    assert retry["model"]["name"] == RETRY
    churn = client.post(CHURN_PATH, json={"customer_id": payment()["customer_id"]}).json()
    assert 0 <= churn["churn_score"] <= 1 and churn["model"]["name"] == CHURN
    plan = client.post(RECOVERY_PATH, json=body_for(RECOVERY_PATH)).json()
    assert plan["steps"][-1]["action"] == "stop"
    assert {m["name"] for m in plan["models"]} == {RETRY, CHURN}
    for answer in (fraud, retry, churn):
        assert answer["model"]["version"] == "1"


@pytest.mark.integration
def test_an_unknown_customer_is_scored_from_no_history(client) -> None:
    known = client.post(FRAUD_PATH, json=body_for(FRAUD_PATH)).json()
    unknown = client.post(FRAUD_PATH, json=body_for(FRAUD_PATH, customer_id="cus_never_seen"))
    assert unknown.status_code == 200
    assert 0 <= unknown.json()["fraud_score"] <= 1
    assert unknown.json()["fraud_score"] != known["fraud_score"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"currency": "XXX"}, "invalid_currency", "currency"),
        ({"amount_minor": 100_000_000}, "invalid_amount_too_large", None),
        ({"amount_minor": -1}, "invalid_request", "amount_minor"),
        ({"merchant_id": None}, "invalid_request", "merchant_id"),
        ({"created_at": "2025-03-01T12:00:00"}, "invalid_request", "created_at"),
        ({"surprise": 1}, "invalid_request", "surprise"),
    ],
)
def test_a_refused_body_is_a_422_with_a_code(client, change, code, field) -> None:
    for path in (FRAUD_PATH, RETRY_PATH, RECOVERY_PATH):
        response = client.post(path, json=body_for(path, **change))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
        assert error["field"] == field


@pytest.mark.integration
def test_events_outside_the_served_history_are_refused_with_a_code(client) -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    too_old = recent_silver()["provider_created_at"].min()
    for created in (future, too_old):
        response = client.post(FRAUD_PATH, json=payment(created_at=created.isoformat()))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "event_time_out_of_range"


def test_not_json_and_unknown_routes_are_answered_with_codes(empty_client) -> None:
    broken = empty_client.post(
        FRAUD_PATH, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "json_invalid"
    missing = empty_client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_without_champions_every_endpoint_answers_503_model_unavailable(empty_client) -> None:
    for path in PATHS:
        response = empty_client.post(path, json=body_for(path))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
    assert empty_client.get("/health/live").json()["status"] == "ok"
    ready = empty_client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["dependency"] == "models"


@pytest.mark.integration
def test_ready_lists_the_champions_and_the_history_held(client) -> None:
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert {m["name"] for m in ready.json()["models"]} == set(MODEL_NAMES)
    assert ready.json()["history_events"] > 0 and ready.json()["silver_snapshot_id"]


def test_openapi_documents_every_endpoint_with_an_example_body(empty_client) -> None:
    document = empty_client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path in PATHS:
        post = document["paths"][path]["post"]
        name = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        assert schemas[name].get("examples"), f"{name} has no example"
        assert {"200", "422", "503"} <= set(post["responses"])
    assert schemas["ErrorResponse"]["properties"]["error"]


@pytest.mark.integration
def test_a_recovery_without_a_customer_asks_for_a_new_card_at_the_prior(client) -> None:
    body = {**body_for(RECOVERY_PATH), "customer_id": None, "decline_code": "expired_card"}
    plan = client.post(RECOVERY_PATH, json=body).json()
    assert plan["churn_score"] is None and plan["new_card_probability"] == NEW_CARD_PRIOR
    assert [s["action"] for s in plan["steps"]] == ["new_card", "stop"]  # expired: no retry
    assert plan["expected_recovered_minor"] == pytest.approx(NEW_CARD_PRIOR * body["amount_minor"])
