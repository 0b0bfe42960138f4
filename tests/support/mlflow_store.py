"""A migrated, empty MLflow store for a test's lakehouse home (migrations take seconds, so the
store is migrated once per session and copied)."""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from mlflow import MlflowClient


@lru_cache(maxsize=1)
def _template_store() -> Path:
    path = Path(tempfile.mkdtemp(prefix="lakehouse-mlflow-template-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_experiments()
    return path


def mlflow_store(home: Path) -> None:
    """Give the test's lakehouse home a migrated, empty MLflow store."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_store(), home / "mlflow.db")
