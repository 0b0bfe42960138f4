"""Rescoring on real Iceberg tables and a real MLflow store: gold written before the first
champion gets its scores after training, ``merchant_daily`` gets its fraud column for those days,
a replaced champion's rows are scored again, and a second run changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows.context import Lakehouse
from flows.rescore import run_rescore, windows
from flows.stages import rebuild_merchant_daily, score_gold
from flows.train_models import run_training
from lakehouse.cli import app
from ml import registry, scoring
from ml.names import FRAUD, MODEL_NAMES
from tests.support.history import ROUNDS, small_silver, trained_small
from tests.support.mlflow_store import mlflow_store
from warehouse import io
from warehouse import tables as T

CREATED = "provider_created_at"
DAYS = 12  # of the small history in the tables: enough days to rescore, few enough to be quick
_GOLD = (T.GOLD_PAYMENT_SCORES, T.GOLD_MERCHANT_DAILY)
runner = CliRunner()


@pytest.fixture
def lakehouse_without_champions(isolated_settings: Path) -> Lakehouse:
    """The last ``DAYS`` days of the small history through silver, gold scores and
    ``merchant_daily`` as the micro-batch writes them before any model is registered."""
    silver = small_silver()
    recent = silver.filter(pl.col(CREATED) >= silver[CREATED].max() - timedelta(days=DAYS))
    lh = Lakehouse()
    lh.append(T.SILVER_PAYMENT_EVENTS, recent.to_arrow(), summary={})
    assert score_gold(lh).missing_models == list(MODEL_NAMES)
    rebuild_merchant_daily(lh)
    mlflow_store(isolated_settings)
    return lh


def gold(lh: Lakehouse, table: T.TableSpec) -> pl.DataFrame:
    lh.refresh()
    return pl.from_arrow(io.scan(lh.table(table)))


def champion_versions() -> dict[str, str]:
    champions = registry.load_champions()
    return {name: c.version for name, c in champions.items() if c is not None}


@pytest.mark.integration
def test_training_rescores_the_gold_history_written_before_the_first_champions(
    lakehouse_without_champions: Lakehouse,
) -> None:
    lh = lakehouse_without_champions
    before = gold(lh, T.GOLD_PAYMENT_SCORES)
    assert before["fraud_score"].is_null().all() and before["fraud_model"].is_null().all()
    assert gold(lh, T.GOLD_MERCHANT_DAILY)["mean_fraud_score"].is_null().all()

    run = run_training(small_silver, num_boost_round=ROUNDS)

    versions = champion_versions()
    assert set(versions) == set(MODEL_NAMES) and run["rescore"]["champions"] == versions
    after = gold(lh, T.GOLD_PAYMENT_SCORES)
    assert sorted(after["event_id"]) == sorted(before["event_id"])  # replaced, not added
    assert run["rescore"]["rows_rescored"] == after.height
    assert run["rescore"]["days_rescored"] == run["rescore"]["days"] >= DAYS
    fraud = after.filter(scoring.SCORED_BY[FRAUD])
    assert fraud["fraud_score"].is_between(0, 1).all()
    assert set(fraud["fraud_model_version"]) == {versions[FRAUD]}
    assert scoring.stale_scores(after, registry.load_champions()).is_empty()
    daily = gold(lh, T.GOLD_MERCHANT_DAILY)
    paid = daily.filter(pl.col("payments_succeeded") > 0)
    assert paid.height > DAYS and paid["mean_fraud_score"].is_not_null().all()


@pytest.mark.integration
def test_rescore_scores_as_the_gold_stage_would_and_a_second_run_changes_nothing(
    lakehouse_without_champions: Lakehouse,
) -> None:
    lh = lakehouse_without_champions
    for model in trained_small().values():
        assert registry.register_model(model).promoted
    first_day = gold(lh, T.GOLD_PAYMENT_SCORES)[CREATED].min().date()
    since = first_day + timedelta(days=DAYS - 3)

    result = run_rescore(since, lh)

    after = gold(lh, T.GOLD_PAYMENT_SCORES)
    rescored = after.filter(pl.col(CREATED).dt.date() >= since)
    untouched = after.filter(pl.col(CREATED).dt.date() < since)
    assert result["rows_rescored"] == rescored.height > 100 and result["without_event"] == 0
    assert untouched["fraud_model_version"].is_null().all()  # before --since: left as it was
    expected = _scored_by_the_gold_stage(rescored["event_id"])
    columns = [c for c in expected.columns if c != "scored_at"]
    assert_frame_equal(
        rescored.select(columns).sort("event_id"), expected.select(columns).sort("event_id")
    )
    daily = gold(lh, T.GOLD_MERCHANT_DAILY)
    paid = daily.filter(pl.col("payments_succeeded") > 0)
    assert paid.filter(pl.col("day") >= since)["mean_fraud_score"].is_not_null().all()
    assert paid.filter(pl.col("day") < since)["mean_fraud_score"].is_null().all()

    snapshots = {spec: lh.table(spec).current_snapshot().snapshot_id for spec in _GOLD}
    again = run_rescore(since, lh)
    lh.refresh()
    assert again["rows_rescored"] == 0
    assert {spec: lh.table(spec).current_snapshot().snapshot_id for spec in _GOLD} == snapshots


@pytest.mark.integration
def test_a_replaced_champion_rescores_the_rows_of_its_model(
    lakehouse_without_champions: Lakehouse,
) -> None:
    lh = lakehouse_without_champions
    for model in trained_small().values():
        registry.register_model(model)
    since = gold(lh, T.GOLD_PAYMENT_SCORES)[CREATED].max().date() - timedelta(days=1)
    run_rescore(since, lh)
    first = gold(lh, T.GOLD_PAYMENT_SCORES).filter(pl.col(CREATED).dt.date() >= since)
    second = registry.register_model(trained_small()["fraud"])  # a tie: not promoted by itself
    registry.set_champion(FRAUD, second.version)  # an operator moves the alias

    result = run_rescore(since, lh)

    after = gold(lh, T.GOLD_PAYMENT_SCORES).filter(pl.col(CREATED).dt.date() >= since)
    fraud_rows = after.filter(scoring.SCORED_BY[FRAUD])
    assert result["rows_rescored"] == fraud_rows.height > 0
    assert set(fraud_rows["fraud_model_version"]) == {second.version}
    # the same booster under a new version: the same scores; the other models' columns unchanged
    kept = ["event_id", "fraud_score", "retry_model_version", "churn_model_version", "churn_score"]
    assert_frame_equal(after.select(kept).sort("event_id"), first.select(kept).sort("event_id"))


@pytest.mark.integration
def test_rescore_command_reads_since_and_answers_a_bad_date_with_an_error(
    lakehouse_without_champions: Lakehouse,
) -> None:
    lh = lakehouse_without_champions
    for model in trained_small().values():
        registry.register_model(model)
    since = gold(lh, T.GOLD_PAYMENT_SCORES)[CREATED].max().date()
    result = runner.invoke(app, ["run", "rescore", "--since", since.isoformat()])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows_rescored"] == (
        gold(lh, T.GOLD_PAYMENT_SCORES).filter(pl.col(CREATED).dt.date() == since).height
    )
    bad = runner.invoke(app, ["run", "rescore", "--since", "last week"])
    assert bad.exit_code == 1 and "error" in bad.output


def test_windows_hold_at_most_so_many_calendar_days_in_order() -> None:
    start = date(2025, 1, 30)
    days = [start + timedelta(days=d) for d in (0, 1, 6, 7, 8, 30, 31)]
    assert windows(days, 7) == [days[:3], days[3:5], days[5:]]
    assert windows(days, 1) == [[d] for d in days]
    assert windows([], 7) == []


def _scored_by_the_gold_stage(ids: pl.Series) -> pl.DataFrame:
    """What ``score_events`` gives these events with the whole small history as context."""
    silver = small_silver()
    events = silver.filter(pl.col("event_id").is_in(ids.implode()))
    recent = silver.filter(pl.col(CREATED) >= silver[CREATED].max() - timedelta(days=DAYS))
    champions = registry.load_champions()
    return scoring.score_events(events, recent, champions, scored_at=datetime.now(UTC)).scores
