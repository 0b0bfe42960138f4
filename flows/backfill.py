"""``backfill``: rebuild silver and gold for a date range from bronze.

The bronze deliveries received on the given UTC days go through the micro-batch's silver pass
(``flows.silver``: row rules, gates; events already in silver are replaced, not dropped), and the
layers are made to agree with the result, keeping the accounting identity (every delivery is in
silver, pending in the quarantine, a duplicate, or not modelled):

- silver: the rows of the range's events are replaced in one commit, and rows whose delivery now
  fails a rule leave it;
- quarantine: deliveries that now fail get their row (a released one is quarantined again),
  pending rows whose delivery now passes are marked released; an operator's ``GATE_REJECTED``
  rows stay, and their deliveries stay out of silver;
- gold: the scores of those events are recomputed (or dropped), ``gold.merchant_daily`` rebuilt
  for the days they touch.

Idempotent: running it twice gives the same tables; events outside the range are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.context import Lakehouse
from flows.silver import gate_params, silver_pass
from flows.stages import rebuild_days, score
from transforms.quarantine import operator_rejected, rebuilt
from warehouse import io, queries
from warehouse import tables as T

SUMMARY_BACKFILL = "lakehouse.backfill"
EVENT_ID, CREATED = "event_id", queries.CREATED


def run_backfill(start: date, end: date, lh: Lakehouse | None = None) -> dict[str, Any]:
    """Rebuild silver and gold for bronze deliveries received from ``start`` to ``end``."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    lh = lh or Lakehouse()
    bronze = queries.received_between(lh.table(T.BRONZE_WEBHOOK_EVENTS), start, end)
    if bronze.is_empty():
        return {"bronze_rows": 0, "silver_rows": 0, "scores": 0}
    note = f"backfill {start}..{end}"
    silver = _rebuild_silver(lh, bronze, start, end, note)
    scored, daily = _rebuild_gold(lh, silver, note)
    return {
        "bronze_rows": bronze.height,
        "silver_rows": silver.events.height,
        "left_silver": silver.left.height,
        "quarantined": silver.failing.len(),
        "quarantine_rows_written": silver.quarantine_rows,
        "kept_by_operator": silver.kept_by_operator,
        "scores": scored.scores.height,
        "merchant_daily_rows": daily,
        "missing_models": list(scored.missing_models),
    }


@dataclass(frozen=True)
class _Silver:
    """What the rebuild did to silver: the events written, the rows that left (event id, time)."""

    events: pl.DataFrame
    left: pl.DataFrame
    failing: pl.Series
    quarantine_rows: int
    kept_by_operator: int


def _rebuild_silver(
    lh: Lakehouse, bronze: pl.DataFrame, start: date, end: date, note: str
) -> _Silver:
    """The silver pass over the range; silver and the quarantine made to agree with it."""
    q_table, silver = lh.table(T.SILVER_QUARANTINE), lh.table(T.SILVER_PAYMENT_EVENTS)
    recorded = queries.quarantined_between(q_table, start, end)
    deliveries = bronze.filter(~pl.col("delivery_id").is_in(operator_rejected(recorded).implode()))
    now = datetime.now(UTC)
    result = silver_pass(lh, deliveries, now, params=gate_params(lh.settings), dedupe=False)
    events, failing = result.events, result.quarantine["delivery_id"]
    summary = {SUMMARY_BACKFILL: note}
    left = queries.rows_with(silver, "delivery_id", failing.to_list(), (EVENT_ID, CREATED))
    keys = {EVENT_ID: events[EVENT_ID].to_list(), "delivery_id": failing.to_list()}
    io.replace_keyed(silver, events.to_arrow(), keys, summary=summary)
    rows = rebuilt(recorded, result.quarantine, deliveries["delivery_id"], note, now)
    io.replace_rows(q_table, rows.to_arrow(), "quarantine_id", rows["quarantine_id"], summary)
    kept = bronze.height - deliveries.height
    return _Silver(events, left, failing, rows.height, kept)


def _rebuild_gold(lh: Lakehouse, silver: _Silver, note: str) -> tuple[Any, int]:
    """Scores of the rebuilt events recomputed (those of events that left silver dropped), and
    ``gold.merchant_daily`` rebuilt for the days either touches."""
    events, left = silver.events, silver.left
    scored = score(lh, events, datetime.now(UTC))
    ids = [*events[EVENT_ID].to_list(), *left[EVENT_ID].to_list()]
    scores, summary = lh.table(T.GOLD_PAYMENT_SCORES), {SUMMARY_BACKFILL: note}
    io.replace_rows(scores, scored.scores.to_arrow(), EVENT_ID, ids, summary=summary)
    lh.refresh()
    days = pl.concat([events[CREATED], left[CREATED]]).dt.date().unique().to_list()
    daily = rebuild_days(lh, days, summary=summary)[0] if days else 0
    return scored, daily


@flow(name="backfill")
def backfill(start: date, end: date) -> dict[str, Any]:
    """Rebuild silver and gold from bronze for deliveries received from ``start`` to ``end``."""
    result = run_backfill(start, end)
    get_run_logger().info("backfill %s..%s: %s", start, end, result)
    create_markdown_artifact(
        key="backfill",
        markdown=f"# Backfill {start}..{end}\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in result.items()),
    )
    return result
