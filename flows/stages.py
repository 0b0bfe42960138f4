"""The micro-batch stages over a warm context (``flows.context.Lakehouse``): bronze, silver, gold.

Each stage reads from where its own table says it stopped, calls the layers, and commits
atomically per table, so it is idempotent and resumable (``docs/architecture.md``, "No event lost,
none counted twice"):

- bronze: one append per batch recording the next Kafka offsets, then the consumer-group commit;
- silver: bronze appended after its watermark → the silver pass (``flows.silver``: row rules,
  dedupe, three gates) → quarantine rows, then the events not yet in silver, with the new
  watermark;
- gold: silver rows after the scores' watermark → one score row per eligible event; and
  ``gold.merchant_daily`` rebuilt for the days those rows touch.

A failed gate raises ``GateFailed``: nothing of that batch is promoted, the watermark stays, the
hold is recorded for ``lakehouse status``, and the next run retries it (or an operator's
``HeldBatchDecision`` releases it). Gold's gates hold too, without an operator: the next pass
retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pyarrow.compute as pc

from flows.context import Lakehouse
from flows.report import StageReport
from flows.silver import GateFailed, gate_params, record_hold, run_gate, silver_pass
from ml import features, registry, scoring
from quality.decisions import HeldBatchDecision
from transforms.merchant_daily import EVENT_COLUMNS, SCORE_COLUMNS, for_gold, merchant_daily
from warehouse import io, queries, watermarks
from warehouse import tables as T

__all__ = [
    "GateFailed",
    "load_bronze",
    "promote_silver",
    "rebuild_days",
    "rebuild_merchant_daily",
    "score",
    "score_gold",
]


def load_bronze(lh: Lakehouse, max_records: int, max_seconds: float) -> StageReport:
    """Consume up to ``max_records``/``max_seconds`` from where bronze stands into one bronze
    commit recording the offsets; then commit them to the consumer group.

    Safe to run again after a failure anywhere (a Prefect retry, the next loop or flow run): the
    batch is read from the offsets in bronze's current snapshot, so a batch that never reached
    bronze is read again and one read ahead past it is thrown away; the commit fences what
    another loader recorded meanwhile (``docs/architecture.md``, the no-loss protocol).
    """
    started = time.perf_counter()
    batch = lh.reader.poll_batch(max_records, max_seconds, lh.recorded_offsets())
    report = StageReport("bronze", rows_in=batch.size, lag=lh.reader.lag())
    if batch.size == 0:
        return _timed(report, started)
    done = lh.append_deliveries(batch, lh.reader.owned())
    lh.reader.commit({k: done.recorded[k] for k in batch.next_offsets if k in done.recorded})
    report.rows_out = done.rows.num_rows
    oldest = pc.min(batch.rows["received_at"]).as_py()
    report.oldest_unprocessed_age_s = round((datetime.now(UTC) - oldest).total_seconds(), 3)
    return _timed(report, started)


def promote_silver(lh: Lakehouse, decision: HeldBatchDecision | None = None) -> StageReport:
    """Bronze rows after silver's watermark → quarantine + deduplicated, gated silver events.

    The batch goes through ``flows.silver.silver_pass`` (row rules, dedupe, three gates). A failed
    gate records the hold (``record_hold``, for ``lakehouse status``), raises ``GateFailed`` and
    commits nothing else, unless an operator's ``decision`` accepts, quarantines or splits it.
    """
    started = time.perf_counter()
    silver, quarantine = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.SILVER_QUARANTINE)
    old_wm = watermarks.watermark(silver)
    new, new_wm, held = lh.appended_since(T.BRONZE_WEBHOOK_EVENTS, old_wm)
    report = StageReport("silver", rows_in=new.num_rows)
    if new.num_rows == 0:
        return _timed(report, started)
    now, deliveries = datetime.now(UTC), pl.from_arrow(new)
    try:
        result = silver_pass(
            lh, deliveries, now, params=gate_params(lh.settings), decision=decision
        )
    except GateFailed as error:
        record_hold(silver, error, deliveries.height, now)
        raise
    summary = watermarks.source_summary(new_wm) | result.summary
    queries.record_quarantine(quarantine, result.quarantine, summary)
    events, unmoved = result.events.to_arrow(), watermarks.unmoved(old_wm)
    try:  # with several loaders, the first to promote a range wins
        lh.append(T.SILVER_PAYMENT_EVENTS, events, summary, unmoved)
    except watermarks.Superseded:
        return _timed(report, started)
    lh.recent.release(lh.table(T.BRONZE_WEBHOOK_EVENTS), held)  # silver alone reads bronze
    for gate_result in result.gate_results:
        report.add_gate(gate_result)
    report.rows_out = result.events.height
    report.duplicates = result.duplicates
    report.not_modelled = result.not_modelled
    report.quarantined = dict(result.quarantine.group_by("error_code").len().iter_rows())
    return _timed(report, started)


def score(lh: Lakehouse, events: pl.DataFrame, scored_at: datetime) -> scoring.ScoreResult:
    """Score the live ``events`` (``for_gold``) with the champions, reading the silver history
    their features need (test-mode events left out of it too)."""
    keep_test_mode = lh.settings.gold_include_test_mode
    events = for_gold(events, keep_test_mode)
    models = registry.load_champions()
    # without a registered model every score is null: the history is not needed
    history = None
    if any(m is not None for m in models.values()):
        since = features.history_start(events)
        columns = (*features.INPUT_COLUMNS, "livemode")
        silver = lh.table(T.SILVER_PAYMENT_EVENTS)
        history = for_gold(queries.silver_since(silver, since, columns), keep_test_mode)
        history = history.drop("livemode", strict=False)
    return scoring.score_events(events, history, models, scored_at=scored_at)


def score_gold(lh: Lakehouse) -> StageReport:
    """Silver rows after the scores' watermark → one score row per eligible event."""
    started = time.perf_counter()
    scores = lh.table(T.GOLD_PAYMENT_SCORES)
    old_wm = watermarks.watermark(scores)
    new, new_wm, _ = lh.appended_since(T.SILVER_PAYMENT_EVENTS, old_wm)
    report = StageReport("gold.payment_scores", rows_in=new.num_rows)
    if new.num_rows == 0:
        watermarks.advance_watermark(scores, old_wm, new_wm)
        return _timed(report, started)
    result = score(lh, pl.from_arrow(new), datetime.now(UTC))
    report.missing_models = list(result.missing_models)
    report.add_gate(run_gate(result.scores, "gold_payment_scores"))
    summary, unmoved = watermarks.source_summary(new_wm), watermarks.unmoved(old_wm)
    try:  # with several loaders, the first to score a range wins
        io.append(scores, result.scores.to_arrow(), summary, unmoved)
    except watermarks.Superseded:
        return _timed(report, started)
    report.rows_out = result.scores.height
    return _timed(report, started)


def rebuild_merchant_daily(lh: Lakehouse) -> StageReport:
    """Rebuild ``gold.merchant_daily`` for every day touched by silver rows after its watermark."""
    started = time.perf_counter()
    table = lh.table(T.GOLD_MERCHANT_DAILY)
    old_wm = watermarks.watermark(table)
    new, new_wm, _ = lh.appended_since(
        T.SILVER_PAYMENT_EVENTS, old_wm, columns=("provider_created_at",)
    )
    report = StageReport("gold.merchant_daily", rows_in=new.num_rows)
    if new.num_rows == 0:
        watermarks.advance_watermark(table, old_wm, new_wm)
        return _timed(report, started)
    days = pl.from_arrow(new)["provider_created_at"].dt.date().unique().to_list()
    summary, unmoved = watermarks.source_summary(new_wm), watermarks.unmoved(old_wm)
    try:  # with several loaders, the first to rebuild from a watermark wins
        report.rows_out, checked = rebuild_days(lh, days, summary, unmoved)
    except watermarks.Superseded:
        return _timed(report, started)
    report.add_gate(checked)
    return _timed(report, started)


def rebuild_days(
    lh: Lakehouse, days: Iterable[date], summary: dict[str, str], check: io.Check | None = None
) -> tuple[int, Any]:
    """Recompute ``gold.merchant_daily`` for these UTC days from silver and scores, one commit
    (``check`` as in ``warehouse.io.append``); the rows written and the gate's result."""
    days = sorted(days)
    silver, scores = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.GOLD_PAYMENT_SCORES)
    events = for_gold(
        queries.rows_on_days(silver, days, EVENT_COLUMNS), lh.settings.gold_include_test_mode
    )
    day_scores = queries.rows_on_days(scores, days, SCORE_COLUMNS)
    rows = merchant_daily(events, day_scores, updated_at=datetime.now(UTC))
    checked = run_gate(rows, "gold_merchant_daily")
    daily = lh.table(T.GOLD_MERCHANT_DAILY)
    io.replace_rows(daily, rows.to_arrow(), "day", days, summary, check=check)
    return rows.height, checked


def _timed(report: StageReport, started: float) -> StageReport:
    report.seconds = round(time.perf_counter() - started, 3)
    return report
