"""Benchmark the models: training time per model on the default history, scoring throughput,
and holdout metrics next to the baseline's.

    .venv/bin/python bench/models.py [--days 90] [--customers 2000] [--seed 7] [--batch-rows 400000]

Builds the default labelled history (``lakehouse simulate history`` defaults), runs it through the
pipeline's own bronze → silver transform, trains the three models (LightGBM, 2 threads), then
scores: per model one prediction over a large batch (``--batch-rows`` feature rows; the retry
model scores every candidate delay of each failed payment), and ``score_events`` as the gold stage
runs it (features from history, then each model) over every eligible event of the history as one
batch, timed per step. Timings are the best of three runs after a warm-up.
Goal: training well under a minute per model; at least 200,000 rows/s per model.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl

from ml.features import build_features, with_retry_delay
from ml.metrics import recommend
from ml.registry import Champion
from ml.scoring import ELIGIBLE_TYPES, ScoreResult, score_events
from ml.train import TrainedModel, datasets, train_model
from simulator.history import generate_history
from tests.support.history import silver_of

END = datetime(2026, 1, 1, tzinfo=UTC)
SHOWN = ("auc", "pr_auc", "brier", "ece")


def silver_history(days: int, customers: int, seed: int) -> pl.DataFrame:
    """The labelled history as silver rows, through bronze-shaped deliveries and ``to_silver``."""
    return silver_of(generate_history(days, customers, None, seed, END), processed_at=END)


def champion(model: TrainedModel) -> Champion:
    return Champion(model.spec.name, "bench", model.booster, model.spec.features)


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, object]:
    """Shortest wall time of ``runs`` calls after a warm-up call, and the last result."""
    result, best = fn(), float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def per_model_throughput(
    models: dict[str, TrainedModel], silver: pl.DataFrame, batch_rows: int
) -> dict[str, float]:
    """Rows per second of one prediction call per model over ``batch_rows`` feature rows (the
    retry model: failed payments per second, each scored at every candidate delay)."""
    eligible = silver.filter(pl.col("event_type").is_in(ELIGIBLE_TYPES))
    feats = build_features(eligible)
    big = pl.concat([feats] * (batch_rows // feats.height + 1)).head(batch_rows)
    big = with_retry_delay(big, 24.0)
    out = {}
    for kind, model in models.items():
        scorer = champion(model)
        if kind == "retry":
            seconds, _ = best_of(3, lambda s=scorer: recommend(s.predict, big, s.features))
        else:
            seconds, _ = best_of(3, lambda s=scorer: s.predict(big))
        out[kind] = big.height / seconds
    return out


def in_gold_stage(models: dict[str, TrainedModel], silver: pl.DataFrame) -> ScoreResult:
    """``score_events`` over every eligible event of the history as one batch (best of 3)."""
    champions = {m.spec.name: champion(m) for m in models.values()}
    runs = [score_events(silver, None, champions, scored_at=END) for _ in range(4)][1:]
    return min(runs, key=lambda r: sum(r.seconds.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-rows", type=int, default=400_000)
    args = parser.parse_args()

    started = time.perf_counter()
    silver = silver_history(args.days, args.customers, args.seed)
    print(
        f"history: {silver.height:,} silver events ({args.days} days, {args.customers:,} "
        f"customers) in {time.perf_counter() - started:.1f} s"
    )
    sets = datasets(silver)
    models = {kind: train_model(kind, data) for kind, data in sets.items()}

    print("\ntraining (LightGBM, 2 threads; early stopping, then refit on the training period)")
    for m in models.values():
        print(
            f"  {m.spec.name:15s} {m.train_seconds:6.2f} s  {m.info['rows_train']:>7,} rows, "
            f"{m.info['rounds']} rounds, holdout {m.info['rows_holdout']:,} rows "
            f"(base rate {m.metrics['base_rate']:.3f})"
        )

    print("\nholdout metrics: model | baseline (LR on a rule's signals) | LR on all features")
    for m in models.values():
        for key in SHOWN:
            star = " *" if key == m.spec.primary_metric else ""
            print(
                f"  {m.spec.name:15s} {key:7s} {m.metrics[key]:.4f} | "
                f"{m.baseline_metrics[key]:.4f} | {m.linear_metrics[key]:.4f}{star}"
            )
    retry = models["retry"].metrics
    base = models["retry"].baseline_metrics
    print(
        f"  retry policy (replayed): model {retry['policy_success_rate']:.3f}, baseline "
        f"{base['policy_success_rate']:.3f}, always {retry['fixed_delay_hours']:.0f} h "
        f"{retry['fixed_delay_success_rate']:.3f}"
    )

    print(f"\nscoring: one prediction call per model over {args.batch_rows:,} feature rows")
    for kind, rate in per_model_throughput(models, silver, args.batch_rows).items():
        unit = "failed payments/s (4 delays each)" if kind == "retry" else "rows/s"
        print(f"  {models[kind].spec.name:15s} {rate:12,.0f} {unit}")
    result = in_gold_stage(models, silver)
    rows = result.scores.height
    print(f"\nscoring inside the gold stage: score_events on one batch of {rows:,} eligible events")
    for step, seconds in result.seconds.items():
        print(f"  {step:15s} {seconds:6.3f} s  {rows / seconds:12,.0f} batch rows/s")
    total = sum(result.seconds.values())
    print(f"  {'all':15s} {total:6.3f} s  {rows / total:12,.0f} batch rows/s")


if __name__ == "__main__":
    main()
