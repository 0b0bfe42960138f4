"""Money by the provider's rules: every currency class with amounts from Stripe's documentation
(https://docs.stripe.com/currencies), limits in minor units per currency, and the money each
event moved (refunds, captures, received amounts, disputes) beside the object's own amount."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from iso4217 import Currency

from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms.events import SilverSplit, to_silver
from transforms.money import ISO4217_EXPONENTS, STRIPE
from transforms.rules import RowLimits

NOW = datetime(2024, 7, 2, tzinfo=UTC)


def event(event_type: str = "payment_intent.succeeded", seed: int = 1, **overrides) -> dict:
    overrides.setdefault("created", NOW - timedelta(hours=1))
    return make_stripe_event(event_type, rng=random.Random(seed), **overrides)


def split_of(*events: dict, **kwargs) -> SilverSplit:
    return to_silver(bronze_frame(events), processed_at=NOW, **kwargs)


def paid(currency: str, minor: int, **kwargs) -> SilverSplit:
    return split_of(event(amount=minor, currency=currency), **kwargs)


def code_of(split: SilverSplit) -> str | None:
    return split.quarantine["error_code"].item() if split.quarantine.height else None


@pytest.mark.parametrize(
    ("currency", "minor", "major"),
    [
        # "Zero-decimal currencies": to charge ¥500, provide an amount value of 500
        ("jpy", 500, Decimal("500")),
        ("vnd", 2_000_000, Decimal("2000000")),  # about 80 USD: no "too large" here
        ("mga", 1_000, Decimal("1000")),  # ISO says two decimals; Stripe, zero
        ("ugx", 5_000, Decimal("5000")),
        ("krw", 52_000, Decimal("52000")),
        # two decimals: to charge 10 USD, provide an amount value of 1000
        ("usd", 1_000, Decimal("10.00")),
        ("idr", 150_000_000, Decimal("1500000.00")),  # 1,500,000 IDR: twelve digits allowed
        # "Three-decimal currencies": 5.124 KWD must be rounded to 5120 or 5130
        ("kwd", 5_120, Decimal("5.120")),
        ("bhd", 1_000, Decimal("1.000")),
        # "Special cases": to charge 5 ISK, provide an amount value of 500 (ISO: zero decimals)
        ("isk", 500, Decimal("5.00")),
        # HUF and TWD are zero-decimal for payouts only: charges keep two decimals
        ("huf", 1_045, Decimal("10.45")),
        ("twd", 1_000, Decimal("10.00")),
        # four decimals (ISO 4217), stored exactly
        ("clf", 12_345, Decimal("1.2345")),
        ("uyw", 10_000, Decimal("1.0000")),
    ],
)
def test_major_units_follow_stripes_minor_unit_rule(currency: str, minor: int, major: Decimal):
    split = paid(currency, minor)
    assert code_of(split) is None
    row = split.events.row(0, named=True)
    assert (row["currency"], row["amount_minor"], row["amount"]) == (currency.upper(), minor, major)


@pytest.mark.parametrize("currency", ["dem", "frf", "xxx", "xts", "xau", "xdr", "abc", None])
def test_withdrawn_codes_and_x_codes_are_no_payment_currency(currency: str | None) -> None:
    split = paid(currency, 1000) if currency else split_of(event(currency=None))
    assert code_of(split) == "INVALID_CURRENCY"
    if currency:
        assert currency.upper() in split.quarantine["error_detail"].item()


@pytest.mark.parametrize(
    ("currency", "minor", "code"),
    [
        ("usd", 99_999_999, None),  # eight digits: 999,999.99 USD
        ("usd", 100_000_000, "INVALID_AMOUNT_TOO_LARGE"),
        ("jpy", 99_999_999, None),
        ("jpy", 100_000_000, "INVALID_AMOUNT_TOO_LARGE"),
        ("idr", 999_999_999_999, None),  # twelve digits: 9,999,999,999.99 IDR
        ("idr", 1_000_000_000_000, "INVALID_AMOUNT_TOO_LARGE"),
    ],
)
def test_limits_are_stripes_digits_in_minor_units(currency: str, minor: int, code: str | None):
    split = paid(currency, minor)
    assert code_of(split) == code
    if code:
        detail = split.quarantine["error_detail"].item()
        assert f"{currency.upper()} minor units is over the limit" in detail


def test_a_limit_is_overridden_per_currency_in_minor_units() -> None:
    limits = RowLimits(amount_limits_minor={"jpy": 200_000_000, "USD": 500})
    assert code_of(paid("jpy", 150_000_000, limits=limits)) is None
    assert code_of(paid("usd", 501, limits=limits)) == "INVALID_AMOUNT_TOO_LARGE"
    assert code_of(paid("eur", 99_999_999, limits=limits)) is None  # others keep Stripe's


def test_stripes_table_is_iso_4217_plus_its_documented_exceptions() -> None:
    iso = {c.code: c.exponent for c in Currency if isinstance(c.exponent, int)}
    assert dict(ISO4217_EXPONENTS) == iso
    changed = {c: e for c, e in STRIPE.exponents.items() if iso[c] != e}
    assert changed == {"MGA": 0, "ISK": 2}
    assert set(STRIPE.exponents) == set(iso)
    assert STRIPE.limits() == {**dict.fromkeys(iso, 99_999_999), "IDR": 999_999_999_999}


def test_a_partial_refund_moves_the_refunded_amount_and_keeps_the_charge_amount() -> None:
    refunded = event("charge.refunded", amount=10_000, currency="usd", amount_refunded=3_000)
    row = split_of(refunded).events.row(0, named=True)
    assert (row["amount_minor"], row["object_amount_minor"]) == (3_000, 10_000)
    assert row["amount"] == Decimal("30.00")


def test_a_partial_capture_and_its_refund_move_the_captured_amount() -> None:
    captured = event("charge.captured", amount=10_000, currency="eur", amount_captured=6_000)
    refunded = event(
        "charge.refunded",
        seed=2,
        amount=10_000,
        currency="eur",
        amount_captured=6_000,
        amount_refunded=6_000,
    )
    refund = event("refund.created", seed=3, amount=6_000, currency="eur")
    rows = split_of(captured, refunded, refund).events
    assert rows["amount_minor"].to_list() == [6_000, 6_000, 6_000]
    assert rows["object_amount_minor"].to_list() == [10_000, 10_000, 6_000]


def test_a_succeeded_payment_moves_the_amount_received() -> None:
    intent = event(amount=10_000, currency="usd")
    intent["data"]["object"]["amount_received"] = 6_000  # captured in part
    row = split_of(intent).events.row(0, named=True)
    assert (row["amount_minor"], row["object_amount_minor"]) == (6_000, 10_000)


def test_a_dispute_moves_the_disputed_amount() -> None:
    dispute = split_of(event("charge.dispute.created", amount=2_500, currency="gbp")).events
    assert dispute.select("amount_minor", "object_amount_minor").row(0) == (2_500, 2_500)


def test_without_the_specific_field_the_object_amount_is_what_moved() -> None:
    older_api = event("charge.refunded", amount=4_000, currency="usd")
    del older_api["data"]["object"]["amount_refunded"]
    assert split_of(older_api).events["amount_minor"].item() == 4_000


@pytest.mark.parametrize(
    ("value", "code", "detail"),
    [
        ("3000", "INVALID_AMOUNT", 'amount_refunded is the string "3000"'),
        (-5, "INVALID_AMOUNT_NEGATIVE", "amount_refunded -5 < 0"),
        (10**15, "INVALID_AMOUNT_TOO_LARGE", "amount_refunded 1000000000000000 USD"),
        (12.5, "INVALID_AMOUNT", "amount_refunded 12.5 is not an integer"),
    ],
)
def test_the_moved_amount_field_is_held_to_the_amount_rules(value, code, detail) -> None:
    refunded = event("charge.refunded", amount=10_000, currency="usd", amount_refunded=value)
    split = split_of(refunded)
    assert code_of(split) == code
    assert detail in split.quarantine["error_detail"].item()


def test_livemode_and_api_version_are_kept() -> None:
    live, test = event(), event(seed=2, livemode=False, api_version="2023-10-16")
    rows = split_of(live, test).events.select("livemode", "api_version").rows()
    assert rows == [(True, live["api_version"]), (False, "2023-10-16")]


def test_a_livemode_that_is_no_boolean_is_an_invalid_field_type() -> None:
    split = split_of(event(livemode="yes"))
    assert code_of(split) == "INVALID_FIELD_TYPE"
    assert "livemode" in split.quarantine["error_detail"].item()
