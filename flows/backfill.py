"""``backfill``: rebuild silver and gold for a date range from bronze.

For the bronze deliveries received on the given UTC days, silver rows of those events are replaced
in one commit (after a fix in the transforms, say), their scores are recomputed, and
``gold.merchant_daily`` is rebuilt for the days they touch. Idempotent: running it twice gives the
same tables; events outside the range are not touched.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.context import Lakehouse
from flows.stages import rebuild_days, score, split_bronze
from warehouse import io, queries
from warehouse import tables as T


def run_backfill(start: date, end: date, lh: Lakehouse | None = None) -> dict[str, Any]:
    """Rebuild silver and gold for bronze deliveries received from ``start`` to ``end``."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    lh = lh or Lakehouse()
    bronze = queries.received_between(lh.table(T.BRONZE_WEBHOOK_EVENTS), start, end)
    if bronze.is_empty():
        return {"bronze_rows": 0, "silver_rows": 0, "scores": 0}
    now = datetime.now(UTC)
    split = split_bronze(lh, bronze, now)
    events, ids = split.events, split.events["event_id"].to_list()
    note = {"lakehouse.backfill": f"{start}..{end}"}
    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    # only the rows of the events this range produced are replaced, in silver and in the scores
    io.replace_rows(silver, events.to_arrow(), "event_id", ids, summary=note)
    result = score(silver, events, now)
    scores = result.scores.to_arrow()
    io.replace_rows(lh.table(T.GOLD_PAYMENT_SCORES), scores, "event_id", ids, summary=note)
    lh.refresh()
    days = events["provider_created_at"].dt.date().unique().to_list()
    daily, _ = rebuild_days(lh, days, summary=note)
    return {
        "bronze_rows": bronze.height,
        "silver_rows": events.height,
        "quarantined": split.quarantine.height,
        "scores": result.scores.height,
        "merchant_daily_rows": daily,
        "missing_models": list(result.missing_models),
    }


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
