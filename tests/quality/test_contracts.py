"""Pandera row contracts: outputs satisfy them, a bad value really fails, and a row that breaks
the silver contract cannot reach silver."""

from __future__ import annotations

from datetime import UTC, datetime

import pandera.polars as pa
import polars as pl
import pytest

from quality.contracts import (
    BronzeWebhookEvent,
    ContractError,
    GoldMerchantDaily,
    SilverPaymentEvent,
    SilverQuarantine,
    check_rows,
    contract,
)
from simulator.stream import generate_payloads
from tests.support.bronze import bronze_frame
from transforms import merchant_daily, to_silver
from transforms.schemas import SILVER_QUARANTINE

NOW = datetime(2024, 7, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def bronze() -> pl.DataFrame:
    return bronze_frame(p.body for p in generate_payloads(300, seed=5, malformed_fraction=0.2))


@pytest.fixture(scope="module")
def split(bronze: pl.DataFrame):
    return to_silver(bronze, processed_at=NOW, row_contract=check_rows)


def set_value(frame: pl.DataFrame, column: str, value: object, row: int = 0) -> pl.DataFrame:
    replaced = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
    return frame.with_columns(replaced.cast(frame.schema[column]).alias(column))


def test_transform_outputs_satisfy_their_contracts(bronze: pl.DataFrame, split) -> None:
    BronzeWebhookEvent.validate(bronze)
    SilverPaymentEvent.validate(split.events)
    SilverQuarantine.validate(split.quarantine)
    GoldMerchantDaily.validate(merchant_daily(split.events, None, updated_at=NOW))
    assert split.events.height > 100 and split.quarantine.height > 10


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("amount_minor", -5),
        ("currency", "usd"),
        ("currency", "XAU"),
        ("event_type", "payment.exploded"),
        ("card_last_four", "12345"),
        ("customer_country", "Germany"),
        ("merchant_id", "None"),
        ("event_id", "evt_without_provider"),
        ("schema_version", 1),
    ],
)
def test_a_bad_value_fails_the_silver_contract(split, column: str, value: object) -> None:
    bad = set_value(split.events, column, value, row=3)
    with pytest.raises(pa.errors.SchemaErrors):
        SilverPaymentEvent.validate(bad, lazy=True)
    violations = check_rows(bad)
    assert violations["delivery_id"].to_list() == [split.events["delivery_id"][3]]
    assert column in violations["error_detail"].item()


def test_lazy_frames_are_checked_for_schema_only_so_we_validate_collected_frames(split) -> None:
    bad = set_value(split.events, "amount_minor", -5)
    SilverPaymentEvent.validate(bad.lazy()).collect()  # the pitfall: passes
    with pytest.raises(pa.errors.SchemaError):
        SilverPaymentEvent.validate(bad)


def test_schema_drift_is_a_contract_error_not_a_quarantine(split) -> None:
    with pytest.raises(ContractError, match="metadata"):
        check_rows(split.events.drop("metadata"))


def test_a_row_breaking_the_silver_contract_cannot_reach_silver(bronze: pl.DataFrame) -> None:
    # passes every vectorized rule, breaks the contract's card_last_four pattern
    bent = bronze.with_columns(
        pl.col("payload").str.replace('"last4":"', '"last4":"x', literal=True)
    )
    split = to_silver(bent, processed_at=NOW, row_contract=check_rows)
    SilverPaymentEvent.validate(split.events)
    rejected = split.quarantine.filter(pl.col("error_code") == "ROW_CONTRACT")
    assert rejected.height > 0
    assert rejected["error_detail"].str.contains("card_last_four").all()
    assert not set(rejected["delivery_id"]) & set(split.events["delivery_id"])
    assert split.counts["bronze"] == bronze.height


def test_merchant_daily_contract_rejects_duplicate_keys(split) -> None:
    daily = merchant_daily(split.events, None, updated_at=NOW)
    with pytest.raises(pa.errors.SchemaErrors):
        GoldMerchantDaily.validate(pl.concat([daily, daily.head(1)]), lazy=True)


def test_a_check_on_a_column_the_table_does_not_have_is_refused() -> None:
    with pytest.raises(KeyError, match="replay_count"):
        contract("SilverQuarantine", SILVER_QUARANTINE, {"replay_count": pa.Check.ge(0)})
