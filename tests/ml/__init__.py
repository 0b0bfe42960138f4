"""Shared helpers of the model tests: a small labelled history run through the real bronze →
silver transform, and a pre-migrated MLflow store copied into each test's home."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import polars as pl

from ingest.messages import build_message
from ml.train import TrainedModel, train_all
from simulator.events import encode
from simulator.history import generate_history
from transforms.events import to_silver
from warehouse.tables import BRONZE_WEBHOOK_EVENTS

END = datetime(2025, 3, 1, tzinfo=UTC)
#: Small enough to be quick, large enough for every model to find its structure.
SMALL = {"days": 70, "customers": 700, "seed": 11, "fraud_rate": 0.2}
#: Boosting rounds in tests (early stopping usually ends sooner).
ROUNDS = 150


def bronze_frame(events: Iterable[dict]) -> pl.DataFrame:
    """``bronze.webhook_events`` rows of events, as the receiver and the loader would write them."""
    rows = []
    for offset, event in enumerate(events):
        body = encode(event)
        received = datetime.fromtimestamp(event["created"], UTC) + timedelta(seconds=1)
        msg = build_message(body, received, f"req-{offset}")
        rows.append(
            {
                "delivery_id": f"{msg.topic}:0:{offset}",
                "provider": "stripe",
                "event_id": msg.event_id,
                "event_type": msg.event_type,
                "topic": msg.topic,
                "partition": 0,
                "offset": offset,
                "message_key": msg.key.decode(),
                "payload": body.decode(),
                "dlq_reason": msg.dlq_reason,
                "request_id": f"req-{offset}",
                "received_at": received,
                "ingested_at": received,
            }
        )
    return pl.DataFrame(rows, schema=pl.Schema(BRONZE_WEBHOOK_EVENTS.arrow_schema))


def silver_of(events: Iterable[dict]) -> pl.DataFrame:
    """Silver rows of events through the pipeline's own transform."""
    return to_silver(bronze_frame(events), processed_at=END).events


@lru_cache(maxsize=2)
def small_silver(**overrides: object) -> pl.DataFrame:
    """The small labelled history in silver, built once per test session."""
    params = {**SMALL, **overrides}
    return silver_of(generate_history(end=END, **params))  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def trained_small() -> dict[str, TrainedModel]:
    """The three models trained on the small history, once per test session."""
    return train_all(small_silver(), num_boost_round=ROUNDS)


@lru_cache(maxsize=1)
def _template_store() -> Path:
    from mlflow import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="lakehouse-mlflow-template-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_experiments()
    return path


def mlflow_store(home: Path) -> None:
    """Give the test's lakehouse home a migrated, empty MLflow store (migrations take seconds)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_store(), home / "mlflow.db")
