"""Great Expectations gates: each suite passes good data and names the expectation a violating
batch fails; only what is about the batch is gated (a bad row is the row contract's); gates
return results, never raise, list flagged rows when asked; Data Docs keep a bounded history."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from quality.batch import BatchCounts, silver_batch_summary
from quality.contracts import check_rows
from quality.gates import GateResult, build_data_docs, gate, warm_up
from quality.suites import SUITES, GateParams, build_suite
from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from transforms import merchant_daily, to_silver

NOW = datetime(2024, 7, 2, tzinfo=UTC)
PARAMS = GateParams()


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
    few = GateParams(max_rows=10)
    assert_fails(gate(bronze, "bronze_webhook_events", few), "expect_table_row_count_to_be_between")


def test_silver_gate(silver: pl.DataFrame) -> None:
    result = gate(silver, "silver_payment_events", PARAMS)
    assert result.success and result.evaluated_expectations == 2 and result.rows == silver.height
    twice = set_value(silver, "event_id", silver["event_id"][1])
    assert_fails(
        gate(twice, "silver_payment_events", PARAMS),
        "expect_column_values_to_be_unique",
        "event_id",
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("currency", "usd"),
        ("amount_minor", -1),
        ("event_type", "payment.exploded"),
        ("provider_created_at", NOW - timedelta(days=900)),
    ],
)
def test_what_is_about_one_row_is_the_row_contracts_not_the_gates(
    silver: pl.DataFrame, column: str, value: object
) -> None:
    bad = set_value(silver, column, value, row=4)
    assert gate(bad, "silver_payment_events", PARAMS).success  # the batch is not held …
    if column != "provider_created_at":  # … the row is quarantined (event time: a row rule)
        assert check_rows(bad)["delivery_id"].to_list() == [bad["delivery_id"][4]]


def summary(frames: tuple[pl.DataFrame, pl.DataFrame], **counts: int) -> pl.DataFrame:
    """The batch summary of (bronze, events) frames with these counts (defaults: 200 rows)."""
    base = {"bronze": 200, "events": 150, "quarantined": 20, "duplicates": 10, "not_modelled": 20}
    return silver_batch_summary(BatchCounts(**(base | counts)), *frames, min_rows=100)


def test_silver_batch_gate(bronze: pl.DataFrame, silver: pl.DataFrame) -> None:
    assert gate(summary((bronze, silver)), "silver_batch", PARAMS).success
    lost = summary((bronze, silver), events=149)  # one bronze row went nowhere
    assert_fails(
        gate(lost, "silver_batch", PARAMS), "expect_column_values_to_be_between", "unaccounted_rows"
    )
    bad_share = summary((bronze, silver), events=60, quarantined=110)
    assert_fails(
        gate(bad_share, "silver_batch", PARAMS),
        "expect_column_values_to_be_between",
        "quarantine_share",
    )
    assert gate(bad_share, "silver_batch", GateParams(max_quarantine_share=0.6)).success


def test_a_small_batch_is_not_judged_by_its_quarantine_share(
    bronze: pl.DataFrame, silver: pl.DataFrame
) -> None:
    small = summary(
        (bronze, silver), bronze=3, events=1, quarantined=2, duplicates=0, not_modelled=0
    )
    assert small["quarantine_share"].item() is None
    assert gate(small, "silver_batch", PARAMS).success


def test_a_schema_change_holds_the_batch(bronze: pl.DataFrame, silver: pl.DataFrame) -> None:
    extra = bronze.with_columns(pl.lit(1).alias("surprise"))
    retyped = silver.with_columns(pl.col("amount_minor").cast(pl.Float64))
    for frames, column in (((extra, silver), "bronze"), ((bronze, retyped), "events")):
        result = gate(summary(frames), "silver_batch", PARAMS)
        assert_fails(result, "expect_column_values_to_be_in_set", f"{column}_schema_change")
    changed = summary((extra, retyped))
    assert changed["bronze_schema_change"].item() == "extra: surprise"
    assert changed["events_schema_change"].item().startswith("retyped: amount_minor Float64")


def test_a_gate_asked_with_rows_lists_the_rows_each_failure_flagged(bronze: pl.DataFrame) -> None:
    dup = pl.concat([bronze.head(3), bronze.slice(1, 1)])
    (failure,) = gate(dup, "bronze_webhook_events", PARAMS, with_rows=True).failed
    assert failure.rows == (1, 3)
    (quiet,) = gate(dup, "bronze_webhook_events", PARAMS).failed
    assert quiet.rows == ()


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
    with pytest.raises(KeyError, match="event_id"):
        gate(silver.drop("event_id"), "silver_payment_events", PARAMS)


def test_data_docs_keep_a_bounded_history(silver: pl.DataFrame, tmp_path) -> None:
    results = [gate(silver, "silver_payment_events", PARAMS) for _ in range(3)]
    twice = set_value(silver, "event_id", silver["event_id"][1])
    results.append(gate(twice, "silver_payment_events", PARAMS))
    index = build_data_docs(results, tmp_path / "docs", keep=2)
    pages = sorted(p.name for p in index.parent.glob("*.html") if p.name != "index.html")
    assert len(pages) == 2
    assert (
        "FAILED" in index.read_text() and "expect_column_values_to_be_unique" in index.read_text()
    )
    assert "event_id" in (index.parent / pages[-1]).read_text()
