"""The MLflow registry (a real SQLite store in the test's home): a champion must beat its baseline
and the current champion on the same holdout, the per-process champion cache, reproducible
versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from ml import registry
from ml.train import Dataset, TrainedModel, datasets, train_model
from settings import get_settings
from tests.support.history import ROUNDS, small_silver, trained_small
from tests.support.mlflow_store import mlflow_store


@pytest.fixture
def store(isolated_settings: Path) -> Path:
    mlflow_store(isolated_settings)
    return isolated_settings


def _client() -> MlflowClient:
    uri = get_settings().resolved_mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _champion_version(name: str) -> str:
    return str(_client().get_model_version_by_alias(name, "champion").version)


def _trained_on(kind: str, labels: str = "true", **params: object) -> TrainedModel:
    """A model of ``kind`` on the small history, its training labels as they are ("true"),
    shuffled or inverted; ``params`` override LightGBM's."""
    data = datasets(small_silver(), (kind,))[kind]
    y = data.train["label"].to_numpy()
    y = {"true": y, "shuffled": np.random.default_rng(0).permutation(y), "inverted": 1 - y}[labels]
    train = data.train.with_columns(label=pl.Series(y))
    return train_model(kind, Dataset(train, data.holdout), num_boost_round=ROUNDS, params=params)


def test_first_version_becomes_champion_and_a_worse_challenger_does_not(store: Path) -> None:
    good = trained_small()["churn"]
    first = registry.register_model(good)
    assert first.promoted and first.champion is None
    assert _champion_version("payments-churn") == first.version

    worse = registry.register_model(_trained_on("churn", "shuffled"))
    assert not worse.promoted
    assert worse.champion_version == first.version
    assert worse.champion == pytest.approx(good.metrics["auc"])  # re-scored on the same holdout
    assert worse.challenger < worse.champion
    assert _champion_version("payments-churn") == first.version

    run = _client().get_run(worse.run_id)
    assert run.data.metrics["promoted"] == 0.0
    assert run.data.metrics["champion_auc"] == pytest.approx(worse.champion)
    assert run.data.metrics["challenger_auc"] == pytest.approx(worse.challenger)
    assert run.data.tags["decision"] == "kept_champion"
    assert run.data.tags["decision_reason"] == worse.reason


def test_a_tie_with_the_champion_does_not_promote(store: Path) -> None:
    model = trained_small()["churn"]
    first = registry.register_model(model)
    second = registry.register_model(model)
    assert (
        second.challenger == pytest.approx(second.champion) and second.challenger > second.baseline
    )
    assert not second.promoted and "does not beat champion" in second.reason
    assert _champion_version("payments-churn") == first.version != second.version


def test_a_first_version_that_does_not_beat_its_baseline_is_not_champion(store: Path) -> None:
    constant = _trained_on("churn", min_data_in_leaf=10**9)  # no split: one score for every row
    decision = registry.register_model(constant)
    assert decision.challenger == pytest.approx(0.5)
    assert decision.challenger < decision.baseline
    assert not decision.promoted and decision.champion_version is None
    assert registry.load_champion("payments-churn") is None


def test_a_challenger_that_beats_the_champion_but_not_its_baseline_is_not_promoted(
    store: Path,
) -> None:
    # an operator points the alias at a model that learnt the labels the wrong way round
    inverted = registry.register_model(_trained_on("churn", "inverted"))
    registry.set_champion("payments-churn", inverted.version)
    constant = registry.register_model(_trained_on("churn", min_data_in_leaf=10**9))
    assert constant.champion_version == inverted.version
    assert constant.champion is not None and constant.champion < constant.challenger
    assert constant.challenger <= constant.baseline
    assert not constant.promoted and "baseline" in constant.reason
    assert _champion_version("payments-churn") == inverted.version


@pytest.mark.parametrize(
    ("challenger", "baseline", "champion_version", "champion", "promoted"),
    [
        (0.8, 0.7, None, None, True),  # first champion
        (0.7, 0.7, None, None, False),  # ties its baseline
        (0.8, 0.7, "1", 0.75, True),  # beats both
        (0.8, 0.7, "1", 0.8, False),  # ties the champion
        (0.8, 0.85, "1", 0.6, False),  # beats the champion, not the baseline
        (float("nan"), 0.7, None, None, False),  # undefined on this holdout
        (0.8, 0.7, "1", None, True),  # the champion's features are no longer built
    ],
)
def test_promotion_needs_the_baseline_and_the_champion_beaten(
    challenger: float,
    baseline: float,
    champion_version: str | None,
    champion: float | None,
    promoted: bool,
) -> None:
    assert registry.promotion(challenger, baseline, champion_version, champion)[0] is promoted


def test_champion_is_cached_until_the_alias_moves(store: Path) -> None:
    model = trained_small()["churn"]
    first = registry.register_model(model)
    second = registry.register_model(model)  # a tie: registered, not promoted
    registry.set_champion("payments-churn", second.version)
    loaded = registry.load_champion("payments-churn")
    assert loaded is not None and loaded.version == second.version
    assert registry.load_champion("payments-churn") is loaded  # alias unchanged: no reload
    registry.set_champion("payments-churn", first.version)
    moved = registry.load_champion("payments-churn")
    assert moved is not None and moved is not loaded and moved.version == first.version


def test_a_version_loaded_twice_scores_identically(store: Path) -> None:
    model = trained_small()["fraud"]
    version = registry.register_model(model).version
    one = registry.load_version("payments-fraud", version)
    two = registry.load_version("payments-fraud", version)
    assert one.booster is not two.booster
    np.testing.assert_array_equal(one.predict(model.holdout), two.predict(model.holdout))
    np.testing.assert_allclose(one.predict(model.holdout), model.predict(model.holdout))


def test_no_store_means_no_champion_and_creates_nothing(isolated_settings: Path) -> None:
    assert registry.load_champion("payments-fraud") is None
    assert not (isolated_settings / "mlflow.db").exists()


def test_a_model_never_registered_has_no_champion(store: Path) -> None:
    assert registry.load_champion("payments-retry") is None
