"""The micro-batch stages over a warm context (``flows.context.Lakehouse``): bronze, silver, gold.

Each stage reads from where its own table says it stopped, calls the layers, and commits
atomically per table, so it is idempotent and resumable (``docs/architecture.md``, "No event lost,
none counted twice"):

- bronze: one append per batch recording the next Kafka offsets, then the consumer-group commit;
- silver: bronze appended after its watermark → two gates → quarantine rows, then the events not
  yet in silver, with the new watermark;
- gold: silver rows after the scores' watermark → one score row per eligible event; and
  ``gold.merchant_daily`` rebuilt for the days those rows touch.

A failed gate raises ``GateFailed``: nothing of that batch is promoted, the watermark stays, and
the next run retries it (or an operator's ``HeldBatchDecision`` releases it).
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
from ml import features, registry, scoring
from quality import contracts, gates
from quality.decisions import HeldBatchDecision
from quality.suites import GateParams
from transforms.events import SilverSplit, drop_seen, to_silver
from transforms.merchant_daily import EVENT_COLUMNS, SCORE_COLUMNS, merchant_daily
from transforms.quarantine import gate_rejected
from warehouse import io, queries, watermarks
from warehouse import tables as T
from warehouse.io import Table


class GateFailed(RuntimeError):
    """A Great Expectations gate held a batch back; the message names the failed expectations."""

    def __init__(self, result: Any) -> None:
        failed = ", ".join(result.failed_expectations)
        super().__init__(f"gate {result.suite} failed: {failed}; the batch is held")
        self.result = result


def run_gate(frame: pl.DataFrame, suite: str, params: Any = None, *, hold: bool = False) -> Any:
    """The gate's result for a non-empty batch (None for an empty one: nothing to promote).

    With ``hold`` the caller handles a failure; otherwise a failure raises ``GateFailed``.
    """
    if frame.is_empty():
        return None
    result = gates.gate(frame, suite, params)
    if not result.success and not hold:
        raise GateFailed(result)
    return result


def load_bronze(lh: Lakehouse, max_records: int, max_seconds: float) -> StageReport:
    """Consume up to ``max_records``/``max_seconds`` into one bronze commit; then commit offsets."""
    started = time.perf_counter()
    batch = lh.reader.poll_batch(max_records, max_seconds)
    report = StageReport("bronze", rows_in=batch.size, lag=lh.reader.lag())
    if batch.size == 0:
        return _timed(report, started)
    summary = watermarks.offsets_summary(lh.recorded_offsets(), batch.next_offsets)
    lh.append(T.BRONZE_WEBHOOK_EVENTS, batch.rows, summary=summary)
    lh.reader.commit(batch.next_offsets)
    report.rows_out = batch.size
    oldest = pc.min(batch.rows["received_at"]).as_py()
    report.oldest_unprocessed_age_s = round((datetime.now(UTC) - oldest).total_seconds(), 3)
    return _timed(report, started)


def split_bronze(lh: Lakehouse, bronze: pl.DataFrame, processed_at: datetime) -> SilverSplit:
    """Bronze rows → silver events, quarantine rows, not-modelled rows (row contract applied)."""
    return to_silver(
        bronze,
        processed_at=processed_at,
        row_contract=contracts.check_rows,
        amount_max_major=lh.settings.amount_max_major,
    )


def promote_silver(lh: Lakehouse, decision: HeldBatchDecision | None = None) -> StageReport:
    """Bronze rows after silver's watermark → quarantine + deduplicated, gated silver events.

    Two gates: the bronze batch (``bronze_webhook_events``) and the events it yields
    (``silver_payment_events``). A failed gate raises ``GateFailed`` and commits nothing, unless
    an operator's ``decision`` accepts the batch or quarantines it whole (``GATE_REJECTED``).
    """
    started = time.perf_counter()
    silver, quarantine = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.SILVER_QUARANTINE)
    new, new_wm, held = lh.appended_since(T.BRONZE_WEBHOOK_EVENTS, watermarks.watermark(silver))
    report = StageReport("silver", rows_in=new.num_rows)
    if new.num_rows == 0:
        return _timed(report, started)
    now = datetime.now(UTC)
    deliveries = pl.from_arrow(new)
    arrived = run_gate(deliveries, "bronze_webhook_events", hold=True)
    split = split_bronze(lh, deliveries, now)
    events, dropped = drop_seen(split.events, queries.seen_event_ids(silver, split.events))
    promoted = run_gate(events, "silver_payment_events", _gate_params(lh), hold=True)
    report.add_gate(arrived)
    report.add_gate(promoted)
    summary, rejected = watermarks.source_summary(new_wm), split.quarantine
    failed = next((r for r in (arrived, promoted) if r is not None and not r.success), None)
    if failed is not None:
        if decision is None:
            raise GateFailed(failed)
        summary |= decision.summary
        if decision.action == "quarantine":
            detail = f"gate {failed.suite} failed: {'; '.join(failed.failed_expectations)}"
            whole = gate_rejected(deliveries, events["delivery_id"], detail, now)
            rejected, events = pl.concat([rejected, whole]), events.clear()
    rows = queries.unrecorded_quarantine(quarantine, rejected)
    io.append(quarantine, rows.to_arrow(), summary=summary)
    lh.append(T.SILVER_PAYMENT_EVENTS, events.to_arrow(), summary=summary)
    lh.recent.release(lh.table(T.BRONZE_WEBHOOK_EVENTS), held)  # silver alone reads bronze
    report.rows_out = events.height
    report.duplicates = dropped + split.duplicates_in_batch
    report.not_modelled = split.not_modelled.height
    report.quarantined = dict(rejected.group_by("error_code").len().iter_rows())
    return _timed(report, started)


def score(silver: Table, events: pl.DataFrame, scored_at: datetime) -> scoring.ScoreResult:
    """Score ``events`` with the champions, reading the silver history their features need."""
    models = registry.load_champions()
    # without a registered model every score is null: the history is not needed
    history = None
    if any(m is not None for m in models.values()):
        since = features.history_start(events)
        history = queries.silver_since(silver, since, features.INPUT_COLUMNS)
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
    result = score(lh.table(T.SILVER_PAYMENT_EVENTS), pl.from_arrow(new), datetime.now(UTC))
    report.missing_models = list(result.missing_models)
    report.add_gate(run_gate(result.scores, "gold_payment_scores"))
    io.append(scores, result.scores.to_arrow(), summary=watermarks.source_summary(new_wm))
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
    report.rows_out, checked = rebuild_days(lh, days, watermarks.source_summary(new_wm))
    report.add_gate(checked)
    return _timed(report, started)


def rebuild_days(lh: Lakehouse, days: Iterable[date], summary: dict[str, str]) -> tuple[int, Any]:
    """Recompute ``gold.merchant_daily`` for these UTC days from silver and scores, one commit;
    the rows written and the gate's result."""
    days = sorted(days)
    silver, scores = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.GOLD_PAYMENT_SCORES)
    events = queries.rows_on_days(silver, days, EVENT_COLUMNS)
    day_scores = queries.rows_on_days(scores, days, SCORE_COLUMNS)
    rows = merchant_daily(events, day_scores, updated_at=datetime.now(UTC))
    checked = run_gate(rows, "gold_merchant_daily")
    io.replace_rows(lh.table(T.GOLD_MERCHANT_DAILY), rows.to_arrow(), "day", days, summary)
    return rows.height, checked


def _gate_params(lh: Lakehouse) -> GateParams:
    return GateParams(max_age_days=lh.settings.gate_max_event_age_days)


def _timed(report: StageReport, started: float) -> StageReport:
    report.seconds = round(time.perf_counter() - started, 3)
    return report
