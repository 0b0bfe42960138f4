"""Great Expectations gates: each suite passes good data and names the expectation a violating
batch fails; gates return results, never raise; Data Docs keep a bounded history."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from quality.gates import GateResult, build_data_docs, gate, warm_up
from quality.suites import SUITES, GateParams, build_suite
from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms import merchant_daily, to_silver

NOW = datetime(2024, 7, 2, tzinfo=UTC)
PARAMS = GateParams(now=NOW)


@pytest.fixture(scope="module", autouse=True)
def ge_runtime() -> None:
    warm_up()  # imports Great Expectations once for the module


@pytest.fixture(scope="module")
def bronze() -> pl.DataFrame:
    rng = random.Random(2)
    types = ["payment_intent.succeeded"] * 8 + ["refund.created", "charge.dispute.created"]
    created = NOW - timedelta(hours=3)
    events = [
        make_stripe_event(types[i % 10], rng=rng, created=created, account="acct_1", currency="usd")
        for i in range(60)
    ]
    return bronze_frame(events)


@pytest.fixture(scope="module")
def silver(bronze: pl.DataFrame) -> pl.DataFrame:
    return to_silver(bronze, processed_at=NOW).events


@pytest.fixture(scope="module")
def scores(silver: pl.DataFrame) -> pl.DataFrame:
    n = silver.height
    return silver.select("event_id").with_columns(
        pl.Series("fraud_score", [i / n for i in range(n)]),
        pl.lit("3").alias("fraud_model_version"),
        pl.lit(None, dtype=pl.Float64).alias("retry_success_probability"),
        pl.lit(None, dtype=pl.String).alias("retry_model_version"),
        pl.lit(0.5).alias("churn_score"),
        pl.lit("1").alias("churn_model_version"),
    )


def set_value(frame: pl.DataFrame, column: str, value: object, row: int = 0) -> pl.DataFrame:
    replaced = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
    return frame.with_columns(replaced.cast(frame.schema[column]).alias(column))


def assert_fails(result: GateResult, expectation: str, column: str | None = None) -> None:
    assert not result.success
    assert (expectation, column) in {(f.expectation, f.column) for f in result.failed}, (
        result.failed
    )


def test_every_suite_is_code_and_builds() -> None:
    for name in SUITES:
        assert build_suite(name).name == name and build_suite(name).expectations


def test_bronze_gate(bronze: pl.DataFrame) -> None:
    assert gate(bronze, "bronze_webhook_events", PARAMS).success
    dup = pl.concat([bronze, bronze.head(1)])
    assert_fails(
        gate(dup, "bronze_webhook_events", PARAMS),
        "expect_column_values_to_be_unique",
        "delivery_id",
    )
    odd = set_value(bronze, "topic", "webhooks.unknown")
    assert_fails(
        gate(odd, "bronze_webhook_events", PARAMS), "expect_column_values_to_be_in_set", "topic"
    )
    few = GateParams(now=NOW, max_rows=10)
    assert_fails(gate(bronze, "bronze_webhook_events", few), "expect_table_row_count_to_be_between")


def test_silver_gate(silver: pl.DataFrame) -> None:
    result = gate(silver, "silver_payment_events", PARAMS)
    assert result.success and result.evaluated_expectations == 7 and result.rows == silver.height
    cases = [
        ("currency", "usd", "expect_column_values_to_match_regex"),
        ("amount_minor", -1, "expect_column_values_to_be_between"),
        ("event_type", "payment.exploded", "expect_column_values_to_be_in_set"),
        ("event_id", None, "expect_column_values_to_not_be_null"),
        ("event_id", silver["event_id"][1], "expect_column_values_to_be_unique"),
        ("provider_created_at", NOW - timedelta(days=90), "expect_column_values_to_be_between"),
        ("provider_created_at", NOW + timedelta(days=2), "expect_column_values_to_be_between"),
    ]
    for column, value, expectation in cases:
        assert_fails(
            gate(set_value(silver, column, value), "silver_payment_events", PARAMS),
            expectation,
            column,
        )


def test_freshness_window_is_a_parameter(silver: pl.DataFrame) -> None:
    later = GateParams(now=NOW + timedelta(days=60))
    assert_fails(
        gate(silver, "silver_payment_events", later),
        "expect_column_values_to_be_between",
        "provider_created_at",
    )
    assert gate(silver, "silver_payment_events", GateParams(now=later.now, max_age_days=90)).success


def test_gold_scores_gate(scores: pl.DataFrame) -> None:
    assert gate(scores, "gold_payment_scores", PARAMS).success
    too_high = set_value(scores, "fraud_score", 1.5)
    assert_fails(
        gate(too_high, "gold_payment_scores", PARAMS),
        "expect_column_values_to_be_between",
        "fraud_score",
    )
    unversioned = set_value(scores, "fraud_model_version", None)
    assert_fails(
        gate(unversioned, "gold_payment_scores", PARAMS),
        "expect_column_values_to_not_be_null",
        "fraud_model_version",
    )
    twice = pl.concat([scores, scores.head(1)])
    assert_fails(
        gate(twice, "gold_payment_scores", PARAMS), "expect_column_values_to_be_unique", "event_id"
    )


def test_gold_merchant_daily_gate(silver: pl.DataFrame) -> None:
    daily = merchant_daily(silver, None, updated_at=NOW)
    assert gate(daily, "gold_merchant_daily", PARAMS).success
    twice = pl.concat([daily, daily.head(1)])
    assert_fails(
        gate(twice, "gold_merchant_daily", PARAMS),
        "expect_compound_columns_to_be_unique",
        "merchant_id,day,currency",
    )
    assert_fails(
        gate(set_value(daily, "refund_rate", -0.5), "gold_merchant_daily", PARAMS),
        "expect_column_values_to_be_between",
        "refund_rate",
    )


def test_gate_accepts_arrow_and_its_result_is_json_ready(silver: pl.DataFrame) -> None:
    result = gate(silver.to_arrow(), "silver_payment_events", PARAMS)
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["suite"] == "silver_payment_events" and summary["success"] is True


def test_a_gate_does_not_hash_every_value_of_the_batch(bronze: pl.DataFrame) -> None:
    # GE would fingerprint each batch under 1 GB (0.7 s for 100,000 bronze payloads); the gates
    # do not use the fingerprint, so it is switched off
    result = gate(bronze, "bronze_webhook_events", PARAMS)
    assert result.success
    assert "pandas_data_fingerprint" not in result.raw["meta"]["batch_markers"]
    assert result.raw["meta"]["batch_markers"]  # the other markers are still there


def test_unknown_suite_or_missing_column_is_a_bug(silver: pl.DataFrame) -> None:
    with pytest.raises(KeyError):
        gate(silver, "silver_nonsense", PARAMS)
    with pytest.raises(KeyError, match="currency"):
        gate(silver.drop("currency"), "silver_payment_events", PARAMS)


def test_data_docs_keep_a_bounded_history(silver: pl.DataFrame, tmp_path) -> None:
    results = [gate(silver, "silver_payment_events", PARAMS) for _ in range(3)]
    results.append(gate(set_value(silver, "currency", "usd"), "silver_payment_events", PARAMS))
    index = build_data_docs(results, tmp_path / "docs", keep=2)
    pages = sorted(p.name for p in index.parent.glob("*.html") if p.name != "index.html")
    assert len(pages) == 2
    assert (
        "FAILED" in index.read_text() and "expect_column_values_to_match_regex" in index.read_text()
    )
    assert "currency" in (index.parent / pages[-1]).read_text()
