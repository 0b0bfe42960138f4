"""to_silver: codes for every malformed kind, normalization, first delivery wins, counts add up.
(Money by the provider's rules and event time: ``test_money.py``, ``test_event_time.py``.)"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest

from simulator.events import MISSING, make_stripe_event
from simulator.stream import EXPECTED_REJECTION, generate_payloads, malform
from tests.support.bronze import bronze_frame, bronze_row
from transforms.events import SilverSplit, drop_seen, to_silver
from transforms.normalize import EVENT_TYPES
from transforms.schemas import BRONZE_WEBHOOK_EVENTS

NOW = datetime(2024, 7, 2, tzinfo=UTC)


def split_of(*events: dict | bytes | str, **kwargs) -> SilverSplit:
    return to_silver(bronze_frame(events), processed_at=NOW, **kwargs)


def event(event_type: str = "payment_intent.succeeded", seed: int = 1, **overrides) -> dict:
    """A Stripe event created an hour before ``NOW`` (unless ``created`` says when)."""
    overrides.setdefault("created", NOW - timedelta(hours=1))
    return make_stripe_event(event_type, rng=random.Random(seed), **overrides)


def only_code(split: SilverSplit) -> str:
    assert split.events.height == 0, split.events
    assert split.quarantine.height == 1
    return split.quarantine["error_code"].item()


@pytest.mark.parametrize("kind", sorted(EXPECTED_REJECTION))
def test_every_simulated_malformed_kind_is_quarantined_with_its_code(kind: str) -> None:
    body = malform(event(seed=3, amount=2500, currency="usd"), kind, random.Random(5))
    assert only_code(split_of(body)) == EXPECTED_REJECTION[kind]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": 10.5}, "INVALID_AMOUNT"),
        ({"amount": MISSING}, "INVALID_AMOUNT"),
        ({"amount": None}, "INVALID_AMOUNT"),
        ({"amount": "1000"}, "INVALID_AMOUNT"),
        ({"amount": True}, "INVALID_AMOUNT"),
        ({"amount": {"value": 1}}, "INVALID_AMOUNT"),
        ({"amount": -1}, "INVALID_AMOUNT_NEGATIVE"),
        ({"amount": 100_000_001, "currency": "usd"}, "INVALID_AMOUNT_TOO_LARGE"),
        ({"amount": 1_000_000_001, "currency": "jpy"}, "INVALID_AMOUNT_TOO_LARGE"),
        ({"currency": "dem"}, "INVALID_CURRENCY"),
        ({"currency": "xxx"}, "INVALID_CURRENCY"),
        ({"currency": "XTS"}, "INVALID_CURRENCY"),
        ({"currency": "xau"}, "INVALID_CURRENCY"),
        ({"currency": None}, "INVALID_CURRENCY"),
        ({"data": {"object": None}}, "MISSING_DATA_OBJECT"),
        ({"data": {"object": "pi_123"}}, "MISSING_DATA_OBJECT"),
        ({"data": "nothing"}, "MISSING_DATA_OBJECT"),
        ({"outcome": "approved"}, "INVALID_FIELD_TYPE"),
        ({"metadata": ["not", "a", "map"]}, "INVALID_FIELD_TYPE"),
    ],
)
def test_malformed_payment_objects_get_their_code(overrides: dict, code: str) -> None:
    assert only_code(split_of(event(**overrides))) == code


@pytest.mark.parametrize("object_id", [MISSING, None, "None", ""])
def test_object_without_usable_id_is_missing_object_id(object_id: object) -> None:
    body = event()
    if object_id is MISSING:
        del body["data"]["object"]["id"]
    else:
        body["data"]["object"]["id"] = object_id
    assert only_code(split_of(body)) == "MISSING_OBJECT_ID"


def test_huge_integer_amount_is_too_large_not_a_crash() -> None:
    body = orjson.dumps(event(amount=123)).replace(b'"amount":123', b'"amount":1' + b"0" * 25)
    assert only_code(split_of(body)) == "INVALID_AMOUNT_TOO_LARGE"


def test_dlq_deliveries_are_quarantined_with_the_receivers_reason() -> None:
    bodies = [b"{not json", orjson.dumps(event(id=MISSING)), orjson.dumps(event(type=MISSING))]
    split = split_of(*bodies)
    assert split.quarantine["error_code"].to_list() == [
        "INVALID_JSON",
        "MISSING_EVENT_ID",
        "MISSING_EVENT_TYPE",
    ]
    assert split.quarantine["topic"].unique().to_list() == ["webhooks.dlq"]
    assert split.quarantine["event_id"][2].startswith("evt_")


def test_invalid_json_outside_the_dlq_is_caught_by_the_parser() -> None:
    rows = [
        bronze_row(event(seed=s), offset=s) for s in range(5)
    ]  # valid neighbours share the decode chunk
    rows.append({**rows[0], "delivery_id": "x:0:9", "offset": 9, "payload": '{"id": "evt_1",'})
    rows.append({**rows[0], "delivery_id": "x:0:10", "offset": 10, "payload": "[1, 2]"})
    split = to_silver(pl.DataFrame(rows, schema=BRONZE_WEBHOOK_EVENTS.polars), processed_at=NOW)
    assert split.quarantine["error_code"].to_list() == ["INVALID_JSON", "INVALID_JSON"]
    assert split.events.height == 5


def test_one_undecodable_row_does_not_stop_a_large_batch() -> None:
    events = [event(seed=s) for s in range(3000)]
    events[1234] = event(seed=1234, payment_method_details="card")  # object expected
    split = split_of(*events)
    assert split.quarantine_by_code() == {"INVALID_FIELD_TYPE": 1}
    assert split.events.height == 2999


@pytest.mark.parametrize("provider_type", sorted(EVENT_TYPES))
def test_event_types_are_mapped(provider_type: str) -> None:
    split = split_of(event(provider_type, amount=500, currency="eur"))
    row = split.events.row(0, named=True)
    assert (row["provider_event_type"], row["event_type"]) == (
        provider_type,
        EVENT_TYPES[provider_type],
    )


@pytest.mark.parametrize("provider_type", ["customer.created", "invoice.paid", "account.updated"])
def test_types_not_modelled_stay_in_bronze_counted(provider_type: str) -> None:
    split = split_of(event(provider_type))
    assert (split.events.height, split.quarantine.height, split.not_modelled.height) == (0, 0, 1)
    assert split.not_modelled.columns == BRONZE_WEBHOOK_EVENTS.column_names


def test_null_strings_become_null() -> None:
    split = split_of(
        event(customer="None", status="NULL", description="", metadata={"merchant_id": "null"}),
        event("charge.failed", seed=2, failure_message="", failure_code="None"),
    )
    pay, charge = split.events.rows(named=True)
    assert pay["customer_id"] is None and pay["status"] is None
    assert charge["failure_message"] is None and charge["failure_code"] is None


def test_merchant_is_the_account_else_metadata_merchant_id() -> None:
    connect = event(account="acct_1", metadata={"merchant_id": "m_meta"})
    platform = event(seed=2, account=None, metadata={"merchant_id": "m_meta"})
    assert split_of(connect, platform).events["merchant_id"].to_list() == ["acct_1", "m_meta"]


def test_ids_card_and_failure_details_come_from_the_right_places() -> None:
    failed_pi = event("payment_intent.payment_failed", decline_code="insufficient_funds")
    failed_charge = event("charge.failed", seed=2, decline_code="expired_card")
    dispute = event("charge.dispute.created", seed=3)
    refund = event("refund.created", seed=4)
    rows = split_of(failed_pi, failed_charge, dispute, refund).events.rows(named=True)
    obj = failed_pi["data"]["object"]
    assert (
        rows[0]["payment_intent_id"] == obj["id"] and rows[0]["charge_id"] == obj["latest_charge"]
    )
    assert rows[0]["card_last_four"] == obj["last_payment_error"]["payment_method"]["card"]["last4"]
    assert (rows[0]["failure_code"], rows[0]["decline_code"]) == (
        "card_declined",
        "insufficient_funds",
    )
    charge = failed_charge["data"]["object"]
    assert (
        rows[1]["charge_id"] == charge["id"]
        and rows[1]["payment_intent_id"] == charge["payment_intent"]
    )
    assert (rows[1]["decline_code"], rows[1]["card_brand"]) == (
        "expired_card",
        charge["payment_method_details"]["card"]["brand"],
    )
    assert rows[1]["customer_country"] == charge["billing_details"]["address"]["country"]
    assert rows[2]["dispute_reason"] == dispute["data"]["object"]["reason"]
    assert rows[3]["charge_id"] == refund["data"]["object"]["charge"]
    assert rows[3]["dispute_reason"] is None  # a refund's reason is not a dispute reason


def test_metadata_is_json_text_and_created_is_utc() -> None:
    created = datetime(2024, 7, 1, 9, 30, tzinfo=UTC)
    row = split_of(
        event(metadata={"order_id": "o_1", "note": 'a "quoted" {brace}'}, created=created)
    ).events.row(0, named=True)
    assert orjson.loads(row["metadata"]) == {"order_id": "o_1", "note": 'a "quoted" {brace}'}
    assert row["provider_created_at"] == created
    assert (row["processed_at"], row["schema_version"]) == (NOW, 2)
    assert row["event_id"] == f"stripe:{row['provider_event_id']}"


def test_in_batch_duplicates_first_delivery_wins() -> None:
    body = event()
    late = bronze_row(body, offset=1, received_at=NOW + timedelta(seconds=5))
    early = bronze_row(body, offset=7, partition=2, received_at=NOW)
    split = to_silver(
        pl.DataFrame([late, early], schema=BRONZE_WEBHOOK_EVENTS.polars), processed_at=NOW
    )
    assert split.duplicates_in_batch == 1
    assert split.events["delivery_id"].to_list() == [early["delivery_id"]]


def test_every_bronze_row_is_accounted_for_exactly_once() -> None:
    bodies = [p.body for p in generate_payloads(600, seed=11, malformed_fraction=0.25)]
    bronze = bronze_frame(bodies + bodies[:50])  # plus redeliveries
    split = to_silver(bronze, processed_at=NOW)
    counts = split.counts
    assert counts["bronze"] == bronze.height
    assert counts["duplicates_in_batch"] >= 50 - counts["quarantine"]
    delivered = pl.concat(
        [
            split.events["delivery_id"],
            split.quarantine["delivery_id"],
            split.not_modelled["delivery_id"],
        ]
    )
    assert delivered.n_unique() == delivered.len() == bronze.height - split.duplicates_in_batch
    assert split.events["event_id"].is_unique().all()


def test_row_contract_failures_are_quarantined_not_appended() -> None:
    def contract(events: pl.DataFrame) -> pl.DataFrame:
        bad = events.filter(pl.col("currency") == "JPY")
        return bad.select("delivery_id", pl.lit("no yen today").alias("error_detail"))

    split = split_of(event(currency="usd"), event(seed=2, currency="jpy"), row_contract=contract)
    assert split.events["currency"].to_list() == ["USD"]
    assert split.quarantine.select("error_code", "error_detail").row(0) == (
        "ROW_CONTRACT",
        "no yen today",
    )
    assert split.counts["bronze"] == 2


def test_processed_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        to_silver(bronze_frame([event()]), processed_at=datetime(2024, 7, 1))  # noqa: DTZ001


def test_empty_batch_gives_empty_frames_with_the_table_columns() -> None:
    split = to_silver(pl.DataFrame(schema=BRONZE_WEBHOOK_EVENTS.polars), processed_at=NOW)
    assert split.counts == dict.fromkeys(split.counts, 0)


def test_drop_seen_removes_ids_already_in_silver() -> None:
    events = split_of(event(seed=1), event(seed=2), event(seed=3)).events
    seen = pl.Series([events["event_id"][1], "stripe:evt_other"])
    kept, dropped = drop_seen(events, seen)
    assert dropped == 1
    assert kept["event_id"].to_list() == [events["event_id"][0], events["event_id"][2]]


def test_pretty_printed_bodies_parse_like_compact_ones() -> None:
    body = event("payment_intent.payment_failed", metadata={"merchant_id": "m_1", "k": "v"})
    pretty = orjson.dumps(body, option=orjson.OPT_INDENT_2)
    compact, indented = split_of(body).events, split_of(pretty).events
    assert compact.drop("metadata").equals(indented.drop("metadata"))
    assert orjson.loads(indented["metadata"].item()) == {"merchant_id": "m_1", "k": "v"}


def test_metadata_of_the_object_not_of_a_nested_payment_method() -> None:
    failed = event("payment_intent.payment_failed", metadata={"order_id": "o_9"})
    assert failed["data"]["object"]["last_payment_error"]["payment_method"]["metadata"] == {}
    assert split_of(failed).events["metadata"].item() == '{"order_id":"o_9"}'
    assert split_of(event(metadata=MISSING)).events["metadata"].item() is None


def test_a_string_amount_elsewhere_in_the_payload_is_no_string_amount() -> None:
    body = event(amount=1200, currency="usd", metadata={"amount": "12.00"})
    assert split_of(body).events["amount_minor"].item() == 1200


def test_rows_that_would_spill_into_their_neighbours_cannot_shift_the_batch() -> None:
    """Polars decodes a chunk as one JSON array: ``{…},{…}`` splits into two elements and a row
    with an open string can swallow the next one. Such rows are invalid JSON on their own."""
    rows = [bronze_row(event(seed=s), offset=s) for s in range(6)]
    splitter = orjson.dumps(event(seed=50)).decode() + "," + orjson.dumps(event(seed=51)).decode()
    attacks = [splitter, '{"a":"}', '{","id":"evt_swallowed"}']
    for offset, text in enumerate(attacks, start=10):
        rows.append({**rows[0], "delivery_id": f"x:0:{offset}", "offset": offset, "payload": text})
    split = to_silver(pl.DataFrame(rows, schema=BRONZE_WEBHOOK_EVENTS.polars), processed_at=NOW)
    assert split.quarantine["error_code"].to_list() == ["INVALID_JSON"] * 3
    expected = {r["delivery_id"]: orjson.loads(r["payload"])["id"] for r in rows[:6]}
    assert dict(split.events.select("delivery_id", "provider_event_id").iter_rows()) == expected


def test_spill_guard_works_without_header_ids_too() -> None:
    rows = [{**bronze_row(event(seed=s), offset=s), "event_id": None} for s in range(6)]
    splitter = orjson.dumps(event(seed=50)).decode() + "," + orjson.dumps(event(seed=51)).decode()
    for offset, text in enumerate([splitter, '{"a":"}', '{","id":"evt_swallowed"}'], start=10):
        rows.append({**rows[0], "delivery_id": f"x:0:{offset}", "offset": offset, "payload": text})
    split = to_silver(pl.DataFrame(rows, schema=BRONZE_WEBHOOK_EVENTS.polars), processed_at=NOW)
    assert split.quarantine["error_code"].to_list() == ["INVALID_JSON"] * 3
    assert split.events["provider_event_id"].to_list() == [
        orjson.loads(r["payload"])["id"] for r in rows[:6]
    ]
