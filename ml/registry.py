"""The MLflow model registry: the only module that talks to MLflow. MLflow is imported inside the
functions that use it: ``import mlflow`` takes 4.8 s, and a process without a model store (a
micro-batch before the first training) never pays it.

Store: ``settings.resolved_mlflow_tracking_uri`` (SQLite under the lakehouse home by default, or a
database in PostgreSQL, or an MLflow server), artifacts under ``settings.resolved_mlflow_artifacts``
(a folder under the home by default, or ``s3://…`` with the endpoint and credentials of the catalog
properties); one experiment per registered model.

``register_model`` logs a trained model's run (parameters, holdout metrics next to the baseline's,
the feature list, the LightGBM model), registers a new version and decides champion/challenger
(``promotion``): the alias ``champion`` moves to the new version only if its primary metric on the
holdout is **higher** than its baseline's and, when a champion exists, higher than the champion's
**on the same holdout** (the champion is re-scored on it); a tie keeps the champion. The decision,
its reason and the figures are logged to the run. ``load_champion`` is what scoring calls: cached
per process, it asks the registry where the alias points (one cheap query) and loads a model only
when the alias moved.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ml.features import design_matrix
from ml.metrics import evaluate
from ml.names import MODEL_NAMES
from settings import Settings, export_s3_environment, get_settings

if TYPE_CHECKING:
    import lightgbm as lgb
    from mlflow import MlflowClient

    from ml.train import TrainedModel

CHAMPION = "champion"
_FEATURES_TAG = "features"
_PREDICT_THREADS = 2
_cache: dict[tuple[str, str], Champion] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Champion:
    """A registered model version ready to score: its booster and the features it expects."""

    name: str
    version: str
    booster: lgb.Booster
    features: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)

    def predict(self, rows: pl.DataFrame) -> np.ndarray:
        """Probabilities for feature rows (one LightGBM call)."""
        matrix = design_matrix(rows, self.features)
        if not len(matrix):
            return np.empty(0)
        return self.booster.predict(matrix, num_threads=_PREDICT_THREADS)


@dataclass(frozen=True)
class Decision:
    """Champion/challenger outcome of one registration, as logged to the run."""

    name: str
    version: str
    run_id: str
    metric: str
    challenger: float
    baseline: float
    champion: float | None
    champion_version: str | None
    promoted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def register_model(model: TrainedModel, settings: Settings | None = None) -> Decision:
    """Log, register and (maybe) promote ``model``; see the module docstring."""
    import mlflow

    settings = settings or get_settings()
    client = _client(settings)
    spec = model.spec
    with mlflow.start_run(
        experiment_id=_experiment(client, spec.name, settings),
        run_name=f"{spec.kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
    ) as run:
        _log_training(mlflow, model)
        logged = mlflow.lightgbm.log_model(
            model.booster, name="model", pip_requirements=[_lightgbm_requirement()]
        )
        version = mlflow.register_model(
            logged.model_uri, spec.name, tags={_FEATURES_TAG: json.dumps(spec.features)}
        ).version
        decision = _decide(client, model, str(version), run.info.run_id, settings)
        mlflow.log_metrics(
            _finite(
                {
                    f"challenger_{decision.metric}": decision.challenger,
                    f"baseline_{decision.metric}": decision.baseline,
                    f"champion_{decision.metric}": decision.champion,
                    "promoted": float(decision.promoted),
                }
            )
        )
        mlflow.set_tags(
            {
                "decision": "promoted" if decision.promoted else "kept_champion",
                "decision_reason": decision.reason,
                "champion_version_before": decision.champion_version or "",
            }
        )
    if decision.promoted:
        client.set_registered_model_alias(spec.name, CHAMPION, decision.version)
    return decision


def _log_training(mlflow: Any, model: TrainedModel) -> None:
    spec = model.spec
    mlflow.log_params(
        {
            **{k: str(v) for k, v in model.params.items()},
            **{k: str(v) for k, v in model.info.items()},
            "primary_metric": spec.primary_metric,
            "train_seconds": f"{model.train_seconds:.3f}",
        }
    )
    mlflow.log_metrics(
        _finite(
            {
                **{f"holdout_{k}": v for k, v in model.metrics.items()},
                **{f"baseline_{k}": v for k, v in model.baseline_metrics.items()},
                **{f"linear_{k}": v for k, v in model.linear_metrics.items()},
            }
        )
    )
    mlflow.log_dict({"features": list(spec.features)}, "features.json")


def _decide(
    client: MlflowClient, model: TrainedModel, version: str, run_id: str, settings: Settings
) -> Decision:
    """Re-score the current champion on this model's holdout and apply ``promotion``."""
    metric = model.spec.primary_metric
    current = _alias_version(client, model.spec.name)
    champion_value: float | None = None
    if current is not None:
        champion = load_version(model.spec.name, current, settings)
        if set(champion.features) <= set(model.holdout.columns):
            champion_value = evaluate(model.spec.kind, champion.predict, model.holdout)[metric]
    challenger, baseline = model.metrics[metric], model.baseline_metrics[metric]
    promoted, reason = promotion(challenger, baseline, current, champion_value)
    return Decision(
        model.spec.name,
        version,
        run_id,
        metric,
        challenger,
        baseline,
        champion_value,
        current,
        promoted,
        reason,
    )


def promotion(
    challenger: float, baseline: float, champion_version: str | None, champion: float | None
) -> tuple[bool, str]:
    """Whether a version with ``challenger`` on the holdout becomes champion, and why.

    It must beat its baseline, and the current champion re-scored on the same holdout (a tie
    does not promote). A champion that cannot be scored on it (its features are no longer built,
    or its metric is undefined there) cannot score gold either: beating the baseline suffices."""
    if not challenger > baseline:  # NaN never beats
        return False, f"does not beat its baseline ({challenger:.4f} vs {baseline:.4f})"
    if champion_version is None:
        return True, "first champion; beats its baseline"
    if champion is None or math.isnan(champion):
        return True, f"champion v{champion_version} cannot be scored on this holdout"
    if challenger > champion:
        return True, f"beats champion v{champion_version} ({challenger:.4f} vs {champion:.4f})"
    return False, f"does not beat champion v{champion_version} ({challenger:.4f} vs {champion:.4f})"


def load_champion(name: str, settings: Settings | None = None) -> Champion | None:
    """The version the alias ``champion`` points to, or None (no store, model or alias yet).

    Cached per process and tracking store; reloaded only when the alias has moved."""
    settings = settings or get_settings()
    uri = settings.resolved_mlflow_tracking_uri
    if not _store_exists(uri):
        return None
    version = _alias_version(_client(settings), name)
    if version is None:
        return None
    with _lock:
        cached = _cache.get((uri, name))
        if cached is None or cached.version != version:
            cached = _cache[(uri, name)] = load_version(name, version, settings)
    return cached


def load_champions(
    names: Iterable[str] = MODEL_NAMES, settings: Settings | None = None
) -> dict[str, Champion | None]:
    """The champion of each model gold scores with (None where there is none yet)."""
    return {name: load_champion(name, settings) for name in names}


def load_version(name: str, version: str, settings: Settings | None = None) -> Champion:
    """One registered version of a model (for scoring, comparisons and reproducibility)."""
    import mlflow

    client = _client(settings or get_settings())
    details = client.get_model_version(name, version)
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{version}")
    features = tuple(json.loads(details.tags[_FEATURES_TAG]))
    return Champion(name, str(version), booster, features, dict(details.tags))


def set_champion(name: str, version: str, settings: Settings | None = None) -> None:
    """Point the alias at a version by hand (an operator's rollback)."""
    _client(settings or get_settings()).set_registered_model_alias(name, CHAMPION, version)


def _alias_version(client: MlflowClient, name: str) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as exc:
        missing = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}
        if exc.error_code in missing:
            return None
        raise


def _client(settings: Settings) -> MlflowClient:
    """The client of the configured store; also points MLflow's fluent API at it."""
    import mlflow

    uri = settings.resolved_mlflow_tracking_uri
    if settings.resolved_mlflow_artifacts.startswith("s3://"):
        export_s3_environment(settings)  # boto3 reads the endpoint and checksum mode there
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return _client_for(uri)


@lru_cache(maxsize=8)
def _client_for(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _store_exists(uri: str) -> bool:
    """False for a SQLite store that was never created (checked without creating it)."""
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def _experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{settings.resolved_mlflow_artifacts}/{name}"
    if location.startswith("file://"):
        Path(location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=location)


def _lightgbm_requirement() -> str:
    return f"lightgbm=={package_version('lightgbm')}"  # without importing it (3 s)


def _finite(values: Mapping[str, float | None]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
