"""The ``train-models`` flow: silver history → fraud, retry and churn models → MLflow registry →
the gold history rescored when a champion changed.

Idempotent: a run only adds MLflow runs and model versions; the alias ``champion`` moves to a new
version only when it beats its baseline and the current champion on the same holdout (a tie keeps
the champion), so re-running on the same history never makes scoring worse. When a champion moved,
``rescore`` (``flows/rescore.py``, idempotent by event id) scores the gold rows written without it
and rebuilds their days of ``gold.merchant_daily``. Resumable by re-running: a model is registered
whole or not at all, and a rescore stopped half-way is finished by ``lakehouse run rescore``.
Runs without a Prefect server too: ``run_training()`` (``lakehouse run train-models``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.rescore import run_rescore
from ml.registry import register_model
from ml.train import TRAINING_COLUMNS, train_all
from warehouse import queries
from warehouse.catalog import get_catalog
from warehouse.tables import SILVER_PAYMENT_EVENTS

Loader = Callable[[], pl.DataFrame]
_SHOWN = ("auc", "pr_auc", "brier", "ece")


def load_silver_history(days: int = 90) -> pl.DataFrame:
    """Silver rows of the ``days`` days up to the latest event, with the columns that features
    and labels read."""
    table = get_catalog().load_table(SILVER_PAYMENT_EVENTS.identifier_str)
    return queries.latest_span(table, timedelta(days=days), TRAINING_COLUMNS)


def run_training(
    loader: Loader | None = None,
    *,
    history_days: int = 90,
    num_boost_round: int = 400,
    rescore: bool = True,
) -> dict[str, Any]:
    """Train, register and decide champions, then rescore gold if one moved (no Prefect needed):
    ``models`` (the summary per model) and ``rescore`` (None when no champion moved)."""
    silver = loader() if loader else load_silver_history(history_days)
    models = train_all(silver, num_boost_round=num_boost_round)
    summary = {kind: _summary(model, register_model(model)) for kind, model in models.items()}
    moved = any(row["promoted"] for row in summary.values())
    return {"models": summary, "rescore": run_rescore() if rescore and moved else None}


def _summary(model: Any, decision: Any) -> dict[str, Any]:
    return {
        **model.info,
        **decision.as_dict(),
        "beats_baseline": model.beats_baseline,
        "train_seconds": round(model.train_seconds, 3),
        "holdout": model.metrics,
        "baseline_holdout": model.baseline_metrics,
        "linear_holdout": model.linear_metrics,
    }


def summary_markdown(summary: dict[str, Any], rescored: dict[str, Any] | None = None) -> str:
    """The run's artifact: holdout metrics of each model next to its baseline, decisions, and
    what the rescore did."""
    lines = [
        "| model | version | metric | model | baseline | champion before | promoted |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary.values():
        for key in _SHOWN:
            lines.append(
                f"| {row['name']} | {row['version']} | {key} | "
                f"{row['holdout'][key]:.4f} | {row['baseline_holdout'][key]:.4f} | "
                f"{_fmt(row['champion']) if key == row['metric'] else ''} | "
                f"{row['promoted'] if key == row['metric'] else ''} |"
            )
    retry = summary.get("retry")
    if retry:
        h = retry["holdout"]
        lines.append(
            f"\nRetry policy (replayed on the holdout): recommended delay "
            f"{h['policy_success_rate']:.3f} success vs always {h['fixed_delay_hours']:.0f} h "
            f"{h['fixed_delay_success_rate']:.3f}."
        )
    if rescored is not None:
        lines.append(
            f"\nRescored {rescored['rows_rescored']:,} gold rows on {rescored['days_rescored']} "
            f"days with the champions {rescored['champions']}."
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def load_history(days: int) -> pl.DataFrame:
    return load_silver_history(days)


@flow(name="train-models", log_prints=False)
def train_models(history_days: int = 90, num_boost_round: int = 400) -> dict[str, Any]:
    """Train the three models on silver history, register them, publish metrics vs baseline;
    rescore gold when a champion moved."""
    logger = get_run_logger()
    silver = load_history(history_days)
    run = run_training(lambda: silver, num_boost_round=num_boost_round)
    for kind, row in run["models"].items():
        logger.info(
            "%s v%s: %s %.4f (baseline %.4f, champion %s), promoted=%s: %s",
            kind,
            row["version"],
            row["metric"],
            row["challenger"],
            row["baseline"],
            _fmt(row["champion"]),
            row["promoted"],
            row["reason"],
        )
    logger.info("rescore: %s", run["rescore"] or "no champion moved")
    create_markdown_artifact(
        key="train-models",
        markdown=summary_markdown(run["models"], run["rescore"]),
        description="holdout metrics vs baseline, champion decisions, rescore",
    )
    return run
