"""The MLflow registry (a real SQLite store in the test's home): champion/challenger on the same
holdout, the per-process champion cache, reproducible versions."""

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


def _trained_on_shuffled_labels(kind: str) -> TrainedModel:
    data = datasets(small_silver(), (kind,))[kind]
    noise = np.random.default_rng(0).permutation(data.train["label"].to_numpy())
    train = data.train.with_columns(label=pl.Series(noise))
    return train_model(kind, Dataset(train, data.holdout), num_boost_round=ROUNDS)


def test_first_version_becomes_champion_and_a_worse_challenger_does_not(store: Path) -> None:
    good = trained_small()["churn"]
    first = registry.register_model(good)
    assert first.promoted and first.champion is None
    assert _champion_version("payments-churn") == first.version

    worse = registry.register_model(_trained_on_shuffled_labels("churn"))
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


def test_an_equally_good_challenger_takes_the_alias(store: Path) -> None:
    model = trained_small()["churn"]
    first = registry.register_model(model)
    second = registry.register_model(model)
    assert second.promoted and second.champion == pytest.approx(second.challenger)
    assert _champion_version("payments-churn") == second.version != first.version


def test_champion_is_cached_until_the_alias_moves(store: Path) -> None:
    model = trained_small()["churn"]
    first = registry.register_model(model)
    second = registry.register_model(model)
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
