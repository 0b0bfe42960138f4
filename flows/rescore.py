"""``rescore``: score the gold history that was written without the current champions.

A score row is stale when a model that has a champion scores its event but the row's version
column for that model is null (written before the first champion) or names another version (a
champion since replaced): ``ml.scoring.stale_scores``. ``train-models`` runs this step after it
promotes a champion; ``lakehouse run rescore --since …`` and the ``rescore`` deployment run it by
hand.

One window of ``window_days`` UTC days (day partitions of ``gold.payment_scores``) at a time,
oldest first: the window's stale rows, their silver events and the history their features need
(``ml.features.HISTORY``) are read, scored in one vectorized call, gated (``gold_payment_scores``)
and written over the stale rows in one OVERWRITE commit bounded by the window's partitions; then
``gold.merchant_daily`` is rebuilt for the days whose scores changed. Idempotent by event id: a
second run finds no stale row and commits nothing. Resumable: a run stopped half-way leaves the
windows it finished done, and the next run does the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.context import Lakehouse
from flows.stages import rebuild_days, run_gate
from ml import features, registry, scoring
from ml.registry import Champion
from warehouse import io, queries
from warehouse import tables as T

CREATED = "provider_created_at"
SUMMARY_RESCORE = "lakehouse.rescore"  # the champion versions a rescore commit scored with
#: Days per window. The commits dominate: each window makes two OVERWRITE commits (scores and
#: merchant_daily, 0.5-0.9 s each on the local catalog, growing with the tables' snapshots) and
#: runs two gates (0.2 s each). Rescoring the demo's 91 days (73,000 score rows) took 106 s a day
#: at a time and 17 s a week at a time; a window's memory is its days plus 37 days of history.
WINDOW_DAYS = 7


def run_rescore(
    since: date | None = None, lh: Lakehouse | None = None, window_days: int = WINDOW_DAYS
) -> dict[str, Any]:
    """Rescore the stale score rows from day ``since`` (UTC; None: the whole table)."""
    lh = lh or Lakehouse()
    champions = registry.load_champions()
    versions = {name: c.version for name, c in champions.items() if c is not None}
    done = {"since": str(since) if since else None, "champions": versions}
    if not versions:
        return {**done, "days": 0, "days_rescored": 0, "rows_rescored": 0, "without_event": 0}
    days = queries.days_with_rows(lh.table(T.GOLD_PAYMENT_SCORES), since)
    rescored = [rescore_window(lh, w, champions) for w in windows(days, window_days)]
    return {
        **done,
        "days": len(days),
        "days_rescored": sum(changed for changed, _, _ in rescored),
        "rows_rescored": sum(rows for _, rows, _ in rescored),
        "without_event": sum(missing for _, _, missing in rescored),
    }


def windows(days: list[date], window_days: int) -> list[list[date]]:
    """``days`` (sorted) in windows of at most ``window_days`` calendar days."""
    groups: dict[int, list[date]] = {}
    for day in days:
        groups.setdefault((day - days[0]).days // window_days, []).append(day)
    return list(groups.values())


def rescore_window(
    lh: Lakehouse, days: list[date], champions: Mapping[str, Champion | None]
) -> tuple[int, int, int]:
    """Rescore the stale rows of these days and rebuild their ``merchant_daily``: the days
    changed, the rows rescored, and the stale rows whose event silver no longer holds (left as
    they are)."""
    scores, silver = lh.table(T.GOLD_PAYMENT_SCORES), lh.table(T.SILVER_PAYMENT_EVENTS)
    stale = scoring.stale_scores(
        queries.rows_on_days(scores, days, scoring.STALE_COLUMNS), champions
    )
    if stale.is_empty():
        return 0, 0, 0
    start = datetime.combine(days[0], time.min, UTC)
    end = datetime.combine(days[-1], time.min, UTC) + timedelta(days=1)
    history = queries.silver_since(silver, start - features.HISTORY, features.INPUT_COLUMNS, end)
    events = history.filter(pl.col("event_id").is_in(stale.implode()))
    result = scoring.score_events(events, history, champions, scored_at=datetime.now(UTC))
    run_gate(result.scores, "gold_payment_scores")
    summary = {SUMMARY_RESCORE: json.dumps({n: c.version for n, c in champions.items() if c})}
    ids = result.scores["event_id"].to_list()
    new = result.scores.to_arrow()
    io.replace_rows(scores, new, "event_id", ids, summary, within=queries.on_days(days))
    changed = result.scores[CREATED].dt.date().unique().to_list()
    rebuild_days(lh, changed, summary)
    return len(changed), len(ids), stale.len() - len(ids)


@flow(name="rescore")
def rescore(since: date | None = None, window_days: int = WINDOW_DAYS) -> dict[str, Any]:
    """Score the gold rows written without the current champions (from ``since``, or all)."""
    result = run_rescore(since, window_days=window_days)
    get_run_logger().info("rescore since %s: %s", since or "the beginning", result)
    create_markdown_artifact(
        key="rescore",
        markdown="# Rescore\n\n" + "\n".join(f"- {k}: {v}" for k, v in result.items()),
        description="gold rows scored again with the current champions",
    )
    return result
