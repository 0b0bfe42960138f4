"""The silver pass: one batch of bronze deliveries through the row rules, dedupe and the gates.

The one code path of the micro-batch (``flows.stages.promote_silver``), ``replay-quarantine``
(``flows.replay``) and ``backfill`` (``flows.backfill``): the row rules and the row contract
quarantine single rows (``transforms.events.to_silver``); the gates judge the batch
(``bronze_webhook_events``, ``silver_payment_events``, ``silver_batch``). A failed gate raises
``GateFailed`` unless an operator's ``HeldBatchDecision`` says what to do; the pass itself writes
nothing (callers commit), so it can be retried as often as needed.

A hold is recorded durably (``record_hold``: an empty commit on silver whose snapshot summary
holds the ``HeldBatch``), so ``lakehouse status`` in another process can show it; it is cleared
by the batch going through (silver's watermark moves past it: ``held_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from flows.context import Lakehouse
from quality import contracts, gates
from quality.batch import BatchCounts, silver_batch_summary
from quality.decisions import SUMMARY_HELD, HeldBatch, HeldBatchDecision, rejected_deliveries
from quality.suites import GateParams
from settings import Settings
from transforms.events import SilverSplit, drop_seen, to_silver
from transforms.quarantine import gate_rejected
from transforms.rules import RowLimits
from warehouse import io, queries, watermarks
from warehouse import tables as T
from warehouse.io import Table


class GateFailed(RuntimeError):
    """Great Expectations gates held a batch back; the message names the failed expectations."""

    def __init__(self, results: Any) -> None:
        self.results = results if isinstance(results, list) else [results]
        self.result = self.results[0]
        failed = "; ".join(
            f"gate {r.suite} failed: {', '.join(r.failed_expectations)}" for r in self.results
        )
        super().__init__(f"{failed}; the batch is held")


def run_gate(
    frame: pl.DataFrame,
    suite: str,
    params: GateParams | None = None,
    *,
    hold: bool = False,
    with_rows: bool = False,
) -> Any:
    """The gate's result for a non-empty batch (None for an empty one: nothing to promote).

    With ``hold`` the caller handles a failure; otherwise a failure raises ``GateFailed``.
    """
    if frame.is_empty():
        return None
    result = gates.gate(frame, suite, params, with_rows=with_rows)
    if not result.success and not hold:
        raise GateFailed(result)
    return result


def row_limits(settings: Settings) -> RowLimits:
    """The row rules' thresholds from settings."""
    return RowLimits(
        amount_limits_minor=settings.amount_limits_minor,
        event_max_age=timedelta(days=settings.event_max_age_days),
        event_max_future=timedelta(seconds=settings.event_max_future_seconds),
    )


def gate_params(settings: Settings, **overrides: Any) -> GateParams:
    """The batch gates' thresholds from settings (``overrides`` win)."""
    return replace(GateParams(max_quarantine_share=settings.gate_max_quarantine_share), **overrides)


def split_bronze(lh: Lakehouse, bronze: pl.DataFrame, processed_at: datetime) -> SilverSplit:
    """Bronze rows → silver events, quarantine rows, not-modelled rows (row contract applied)."""
    return to_silver(
        bronze,
        processed_at=processed_at,
        limits=row_limits(lh.settings),
        row_contract=contracts.check_rows,
    )


@dataclass
class SilverPass:
    """What one pass decided for a batch: the events to append, the quarantine rows (row rules
    and any operator's rejection), the rows only counted, the gates' results."""

    events: pl.DataFrame
    quarantine: pl.DataFrame
    not_modelled: int
    duplicates: int
    gate_results: list[Any] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)  # the decision, when one was applied


def silver_pass(
    lh: Lakehouse,
    deliveries: pl.DataFrame,
    now: datetime,
    *,
    params: GateParams,
    decision: HeldBatchDecision | None = None,
    dedupe: bool = True,
) -> SilverPass:
    """Row rules, dedupe and the three silver gates over ``deliveries`` (bronze rows).

    ``dedupe`` drops events already in silver (a backfill, which replaces them, passes False).
    A failed gate raises ``GateFailed`` unless ``decision`` says what to do with the batch."""
    with_rows = decision is not None and decision.action == "split"
    arrived = run_gate(deliveries, "bronze_webhook_events", params, hold=True, with_rows=with_rows)
    split = split_bronze(lh, deliveries, now)
    events, seen = split.events, 0
    if dedupe:
        silver = lh.table(T.SILVER_PAYMENT_EVENTS)
        events, seen = drop_seen(events, queries.seen_event_ids(silver, events))
    promoted = run_gate(events, "silver_payment_events", params, hold=True, with_rows=with_rows)
    counts = BatchCounts(
        bronze=deliveries.height,
        events=events.height,
        quarantined=split.quarantine.height,
        duplicates=seen + split.duplicates_in_batch,
        not_modelled=split.not_modelled.height,
    )
    min_rows = lh.settings.gate_quarantine_share_min_rows
    as_a_whole = silver_batch_summary(counts, deliveries, events, min_rows)
    batch = run_gate(as_a_whole, "silver_batch", params, hold=True)
    results = [r for r in (arrived, promoted, batch) if r is not None]
    outcome = SilverPass(events, split.quarantine, counts.not_modelled, counts.duplicates, results)
    failed = [r for r in results if not r.success]
    if not failed:
        return outcome
    if decision is None:
        raise GateFailed(failed)
    return _decided(outcome, deliveries, failed, decision, now)


def _decided(
    outcome: SilverPass,
    deliveries: pl.DataFrame,
    failed: list[Any],
    decision: HeldBatchDecision,
    now: datetime,
) -> SilverPass:
    """``outcome`` after an operator's decision: rejected events move to the quarantine."""
    rejected = rejected_deliveries(decision, failed, deliveries, outcome.events)
    events = outcome.events.join(rejected, on="delivery_id", how="anti", maintain_order="left")
    quarantine = pl.concat([outcome.quarantine, gate_rejected(deliveries, rejected, now)])
    return replace(outcome, events=events, quarantine=quarantine, summary=decision.summary)


def held_batch(silver: Table) -> HeldBatch | None:
    """The batch silver's gates hold, if any: the latest recorded hold, while silver's watermark
    still stands where it was recorded."""
    raw = io.latest_summary_value(silver, SUMMARY_HELD)
    if not raw:
        return None
    hold = HeldBatch.from_json(raw)
    return hold if hold.holds_at(watermarks.watermark(silver)) else None


def record_hold(silver: Table, error: GateFailed, rows: int, now: datetime) -> HeldBatch:
    """Record that the batch after silver's watermark is held (once per batch and failure: a
    run that finds it held again keeps the first ``since``)."""
    after = watermarks.watermark(silver)
    failed = [f"{r.suite}: {name}" for r in error.results for name in r.failed_expectations]
    suites = [r.suite for r in error.results]
    hold = HeldBatch.now(suites, failed, rows, after, now)
    previous = held_batch(silver)
    if previous is not None:
        if (previous.gates, previous.failed, previous.rows) == (hold.gates, hold.failed, rows):
            return previous
        hold = replace(hold, since=previous.since)
    watermarks.note(silver, {SUMMARY_HELD: hold.to_json()})
    return hold
