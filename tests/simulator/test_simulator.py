"""The simulator's events look like Stripe's, are deterministic per seed, and break on demand."""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import stripe

from ingest import topics
from ingest.messages import build_message
from lakehouse.supervisor import free_port
from simulator import (
    EXPECTED_REJECTION,
    MALFORMED_KINDS,
    MERCHANTS,
    MISSING,
    encode,
    generate_events,
    generate_payloads,
    make_stripe_event,
    signature_header,
)
from simulator.direct import bulk_messages, write_bodies

T0 = datetime(2024, 7, 1, 12, tzinfo=UTC)
ROUTED = {
    "payment_intent.created": topics.PAYMENT_INTENT,
    "payment_intent.succeeded": topics.PAYMENT_INTENT,
    "payment_intent.payment_failed": topics.PAYMENT_INTENT,
    "payment_intent.canceled": topics.PAYMENT_INTENT,
    "payment_intent.processing": topics.PAYMENT_INTENT,
    "charge.succeeded": topics.CHARGE,
    "charge.failed": topics.CHARGE,
    "charge.captured": topics.CHARGE,
    "charge.refunded": topics.REFUND,
    "charge.refund.updated": topics.REFUND,
    "charge.dispute.created": topics.DISPUTE,
    "charge.dispute.closed": topics.DISPUTE,
    "refund.created": topics.REFUND,
    "refund.updated": topics.REFUND,
    "customer.created": topics.OTHER,
    "invoice.paid": topics.OTHER,
}
OBJECT_OF = {
    "payment_intent": "payment_intent",
    "charge": "charge",
    "refund": "refund",
    "charge.refund": "refund",
    "charge.dispute": "dispute",
    "customer": "customer",
    "invoice": "invoice",
}


def event(event_type: str, seed: int = 1, **overrides: object) -> dict:
    return make_stripe_event(event_type, rng=random.Random(seed), created=T0, **overrides)


@pytest.mark.parametrize("event_type", sorted(ROUTED))
def test_every_routed_type_has_the_stripe_envelope_and_lands_in_its_topic(event_type: str) -> None:
    evt = event(event_type)
    assert re.fullmatch(r"evt_[A-Za-z0-9]{24}", evt["id"])
    assert evt["object"] == "event" and evt["type"] == event_type
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", evt["api_version"])
    assert evt["created"] == int(T0.timestamp()) and evt["livemode"] is True
    assert isinstance(evt["pending_webhooks"], int) and set(evt["request"]) == {
        "id",
        "idempotency_key",
    }
    obj = evt["data"]["object"]
    assert obj["object"] == OBJECT_OF[event_type.rsplit(".", 1)[0]]
    assert isinstance(obj["id"], str) and isinstance(obj["metadata"], dict)
    assert obj.get("livemode", True) is True  # a live account's objects, like its events
    message = build_message(encode(evt), T0, "req-1")
    assert message.topic == ROUTED[event_type]
    assert message.key.decode() == (evt.get("account") or obj["metadata"]["merchant_id"])


def test_a_failed_payment_intent_carries_last_payment_error_with_a_real_decline_code() -> None:
    obj = event("payment_intent.payment_failed", decline_code="insufficient_funds")["data"][
        "object"
    ]
    assert obj["id"].startswith("pi_") and obj["customer"].startswith("cus_")
    assert obj["status"] == "requires_payment_method" and obj["amount_received"] == 0
    assert obj["payment_method_types"] == ["card"] and obj["latest_charge"].startswith("ch_")
    error = obj["last_payment_error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert error["message"] == "Your card has insufficient funds."
    card = error["payment_method"]["card"]
    assert re.fullmatch(r"\d{4}", card["last4"]) and card["brand"] and len(card["country"]) == 2


def test_a_succeeded_payment_intent_received_its_amount() -> None:
    obj = event("payment_intent.succeeded", amount=4200, currency="eur")["data"]["object"]
    assert (obj["status"], obj["amount"], obj["amount_received"], obj["currency"]) == (
        "succeeded",
        4200,
        4200,
        "eur",
    )
    assert obj["last_payment_error"] is None and isinstance(obj["created"], int)


def test_charges_have_outcome_card_details_and_failure_fields() -> None:
    ok = event("charge.succeeded")["data"]["object"]
    assert ok["paid"] is True and ok["status"] == "succeeded" and ok["failure_code"] is None
    assert ok["outcome"]["network_status"] == "approved_by_network"
    assert ok["outcome"]["type"] == "authorized" and 0 <= ok["outcome"]["risk_score"] <= 100
    assert ok["refunded"] is False and ok["disputed"] is False
    details = ok["payment_method_details"]
    assert details["type"] == "card"
    assert {"brand", "last4", "country", "exp_month", "exp_year", "funding"} <= set(details["card"])
    assert isinstance(details["card"]["exp_year"], int)
    assert len(ok["billing_details"]["address"]["country"]) == 2
    assert ok["payment_intent"].startswith("pi_")

    failed = event("charge.failed", decline_code="do_not_honor")["data"]["object"]
    assert failed["paid"] is False and failed["status"] == "failed"
    assert failed["failure_code"] == "card_declined" and failed["failure_message"]
    assert failed["outcome"]["network_status"] == "declined_by_network"
    assert failed["outcome"]["reason"] == "do_not_honor"
    blocked = event("charge.failed", decline_code="fraudulent")["data"]["object"]
    assert blocked["outcome"]["type"] == "blocked" and blocked["outcome"]["risk_level"] == "highest"


def test_refunds_and_disputes_point_at_their_charge_and_payment_intent() -> None:
    refund = event("refund.created")["data"]["object"]
    assert refund["id"].startswith("re_") and refund["charge"].startswith("ch_")
    assert refund["payment_intent"].startswith("pi_") and refund["status"] == "succeeded"
    assert refund["reason"] == "requested_by_customer" and isinstance(refund["amount"], int)
    dispute = event("charge.dispute.created")["data"]["object"]
    assert dispute["id"].startswith("dp_") and dispute["charge"].startswith("ch_")
    assert dispute["status"] == "needs_response" and dispute["reason"] in {
        "fraudulent",
        "product_not_received",
        "duplicate",
        "subscription_canceled",
        "product_unacceptable",
        "credit_not_processed",
    }
    closed = event("charge.dispute.closed")
    assert closed["data"]["object"]["status"] in {"won", "lost"}
    assert closed["data"]["previous_attributes"] == {"status": "under_review"}


def test_merchants_are_keyed_by_connect_account_or_metadata() -> None:
    connect, platform = MERCHANTS[0], next(m for m in MERCHANTS if not m.connect)
    assert event("charge.succeeded", merchant=connect)["account"] == connect.id
    evt = event("charge.succeeded", merchant=platform)
    assert "account" not in evt
    assert evt["data"]["object"]["metadata"]["merchant_id"] == platform.id


def test_overrides_set_envelope_and_object_fields_or_remove_them() -> None:
    evt = event(
        "payment_intent.succeeded",
        id="evt_fixed",
        account=None,
        customer="cus_ada",
        metadata={"merchant_id": "m_1"},
        amount=1500,
        currency="jpy",
    )
    obj = evt["data"]["object"]
    assert evt["id"] == "evt_fixed" and "account" not in evt
    assert (obj["customer"], obj["metadata"], obj["amount"], obj["amount_received"]) == (
        "cus_ada",
        {"merchant_id": "m_1"},
        1500,
        1500,
    )
    assert obj["currency"] == "jpy"
    assert "id" not in event("charge.succeeded", id=MISSING)
    without_amount = event("charge.succeeded", amount=MISSING)
    assert "amount" not in without_amount["data"]["object"] and encode(without_amount)
    assert event("charge.failed", amount="12.50")["data"]["object"]["amount"] == "12.50"


def test_builders_are_deterministic_and_refuse_naive_datetimes() -> None:
    assert event("charge.failed", seed=3) == event("charge.failed", seed=3)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_stripe_event(created=datetime(2024, 7, 1))  # noqa: DTZ001 - the point of the test


def test_stream_has_several_merchants_customers_and_currencies_in_integer_minor_units() -> None:
    events = list(generate_events(3000, seed=11))
    objs = [e["data"]["object"] for e in events if e["data"]["object"]["object"] == "charge"]
    amounts: dict[str, list[int]] = {}
    for obj in objs:
        assert type(obj["amount"]) is int and obj["amount"] > 0
        assert obj["currency"] == obj["currency"].lower()
        amounts.setdefault(obj["currency"], []).append(obj["amount"])
    assert {"usd", "eur", "gbp", "jpy", "krw", "kwd"} <= set(amounts)
    assert 1_000 <= statistics.median(amounts["usd"]) <= 20_000  # cents: $10 – $200
    assert 1_000 <= statistics.median(amounts["jpy"]) <= 20_000  # yen, no minor unit
    assert all(a % 10 == 0 for a in amounts["jpy"]) and all(a % 100 == 0 for a in amounts["krw"])
    assert 10_000 <= statistics.median(amounts["krw"]) <= 200_000
    assert 5_000 <= statistics.median(amounts["kwd"]) <= 50_000  # fils: 5 – 50 KWD
    # disputes of non-Connect merchants carry no merchant_id (Stripe creates them): keyed by id
    keyed = {topics.message_key(e) for e in events if not e["type"].startswith("charge.dispute")}
    assert keyed == {m.id for m in MERCHANTS}
    assert len({o["customer"] for o in objs}) > 100


def test_stream_mix_is_mostly_successes_with_failures_refunds_disputes_and_others() -> None:
    kinds = Counter(e["type"] for e in generate_events(5000, seed=2))
    payments = kinds["payment_intent.succeeded"] + kinds["payment_intent.payment_failed"]
    assert kinds["payment_intent.succeeded"] / payments > 0.8
    for event_type in ROUTED:
        assert kinds[event_type] > 0, event_type


def test_a_story_shares_its_ids_and_refunds_refer_to_earlier_charges() -> None:
    events = list(generate_events(3000, seed=4))
    charged = {
        e["data"]["object"]["id"]: i
        for i, e in enumerate(events)
        if e["type"] == "charge.succeeded"
    }
    first = next(i for i, e in enumerate(events) if e["type"] == "payment_intent.created")
    pi = events[first]["data"]["object"]["id"]
    assert events[first + 1]["data"]["object"]["payment_intent"] == pi
    refunds = [(i, e) for i, e in enumerate(events) if e["type"] == "refund.created"]
    assert refunds and all(charged[e["data"]["object"]["charge"]] < i for i, e in refunds)
    assert len({e["id"] for e in events}) == len(events)


def test_seeded_generation_is_deterministic_byte_for_byte() -> None:
    first = list(generate_payloads(400, seed=7, malformed_fraction=0.1))
    assert first == list(generate_payloads(400, seed=7, malformed_fraction=0.1))
    assert first != list(generate_payloads(400, seed=8, malformed_fraction=0.1))
    valid = [p.body for p in generate_payloads(400, seed=7)]
    assert valid[:50] == [encode(e) for e in generate_events(50, seed=7)]


def test_malformed_injection_produces_every_kind_each_broken_as_named() -> None:
    payloads = list(generate_payloads(3000, seed=5, malformed_fraction=0.2))
    kinds = Counter(p.malformed for p in payloads)
    assert set(kinds) == {None, *MALFORMED_KINDS}
    assert 0.15 < 1 - kinds[None] / len(payloads) < 0.25
    for payload in payloads:
        if payload.malformed is not None:
            _assert_broken_as(payload.malformed, payload.body)


def _assert_broken_as(kind: str, body: bytes) -> None:
    message = build_message(body, T0, "req-1")
    if kind in ("not_json", "missing_id", "missing_type"):
        assert message.dlq_reason == EXPECTED_REJECTION[kind]
        return
    evt = orjson.loads(body)
    obj = evt["data"].get("object")
    checks = {
        "missing_data_object": lambda: obj is None,
        "missing_object_id": lambda: "id" not in obj,
        "negative_amount": lambda: obj["amount"] < 0,
        "string_amount": lambda: isinstance(obj["amount"], str),
        "amount_too_large": lambda: obj["amount"] > 999_999_999_999,  # above IDR's 12 digits
        "invalid_currency": lambda: obj["currency"].upper() in {"XXX", "XTS", "XAU", "DEM", "FRF"},
    }
    assert checks[kind](), (kind, body[:200])


def test_a_stream_until_now_holds_no_event_dated_after_it() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    start = now - timedelta(hours=1)
    unbounded = list(generate_events(3000, seed=4, start=start))
    assert max(e["created"] for e in unbounded) > now.timestamp()  # bank debits settle days later

    events = list(generate_events(3000, seed=4, start=start, until=now))

    assert len(events) > 2900 and max(e["created"] for e in events) <= now.timestamp()
    assert [e for e in unbounded if e["created"] <= now.timestamp()][:2000] == events[:2000]
    assert (
        len(list(generate_events(3000, seed=4, start=now + timedelta(seconds=1), until=now))) == 0
    )


def test_bulk_messages_are_never_dated_after_the_moment_they_are_delivered() -> None:
    messages = list(bulk_messages(4000, seed=3, pool_size=4000))
    delivered = datetime.now(UTC).timestamp()
    created = [
        orjson.loads(value)["created"] for topic, _, value, _ in messages if topic != topics.DLQ
    ]
    assert len(created) == len(messages) and max(created) <= delivered


def test_signature_header_is_accepted_by_the_stripe_library_and_invalid_is_not() -> None:
    body, secret = encode(event("charge.succeeded")), "whsec_test"
    stripe.WebhookSignature.verify_header(body, signature_header(body, secret), secret, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        header = signature_header(body, secret, invalid=True)
        stripe.WebhookSignature.verify_header(body, header, secret, 300)


def test_bulk_messages_equal_build_message_of_their_body_with_fresh_ids_per_cycle() -> None:
    received = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    messages = list(
        bulk_messages(
            250, seed=9, malformed_fraction=0.1, pool_size=100, received_at=lambda: received
        )
    )
    event_ids = set()
    for topic, key, value, headers in messages:
        names = dict(headers)
        expected = build_message(value, received, names[topics.H_REQUEST_ID].decode())
        assert (topic, key, expected.headers) == (expected.topic, expected.key, headers)
        if expected.event_id:
            event_ids.add(expected.event_id)
    assert len(event_ids) == sum(1 for m in messages if topics.H_EVENT_ID in dict(m[3]))
    assert len({m[2] for m in messages}) == 250
    assert list(bulk_messages(0, seed=9)) == []


def test_direct_writes_nobody_acknowledged_are_reported_failed_not_written() -> None:
    bodies = [encode(e) for e in generate_events(5, seed=1)]
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": "0"}
    report = write_bodies(bodies, config, flush_timeout_s=0.5)
    assert report.written == 0 and sum(report.failed.values()) == 5 and report.errors
