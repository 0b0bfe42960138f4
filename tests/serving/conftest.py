"""A lakehouse with champions for the scoring API: the last ``DAYS`` of the small history in
silver, the three models trained on it registered in MLflow, and gold scored by the gold stage
with them (real Iceberg tables and a real MLflow store in the test's home)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from flows.context import Lakehouse
from flows.stages import score_gold
from ml import registry
from serving.app import create_app
from settings import get_settings
from tests.support.history import small_silver, trained_small
from tests.support.mlflow_store import mlflow_store
from warehouse import tables as T

CREATED = "provider_created_at"
#: More than the history features need (37 days), so that the last day's events are scored by
#: gold and online from complete histories, and the online index leaves older rows out.
DAYS = 40


def recent_silver() -> pl.DataFrame:
    silver = small_silver()
    return silver.filter(pl.col(CREATED) >= silver[CREATED].max() - timedelta(days=DAYS))


@pytest.fixture
def scored_lakehouse(isolated_settings: Path) -> Iterator[Lakehouse]:
    """Silver, champions and gold scores as the micro-batch leaves them after training."""
    mlflow_store(isolated_settings)
    for model in trained_small().values():
        assert registry.register_model(model).promoted
    lh = Lakehouse()
    lh.append(T.SILVER_PAYMENT_EVENTS, recent_silver().to_arrow(), summary={})
    assert score_gold(lh).missing_models == []
    yield lh
    lh.close()


@pytest.fixture
def client(scored_lakehouse: Lakehouse) -> Iterator[TestClient]:
    """The scoring app over the scored lakehouse (lifespan run: champions and features loaded)."""
    with TestClient(create_app(get_settings())) as test_client:
        yield test_client


@pytest.fixture
def empty_client(isolated_settings: Path) -> Iterator[TestClient]:
    """The scoring app before anything was trained or landed."""
    with TestClient(create_app(get_settings())) as test_client:
        yield test_client
