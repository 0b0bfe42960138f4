"""``backfill``: rebuild silver and gold for a date range from bronze.

For the bronze deliveries received on the given UTC days, silver rows of those events are replaced
in one commit (after a fix in the transforms, say), their scores are recomputed, and
``gold.merchant_daily`` is rebuilt for the days they touch. Idempotent: running it twice gives the
same tables; events outside the range are not touched.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows import stages
from warehouse import tables as T


def _bronze_days(lh: stages.Lakehouse, start: date, end: date) -> pl.DataFrame:
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from warehouse.io import scan

    lo = datetime.combine(start, time.min, UTC)
    hi = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    rows = scan(
        lh.table(T.BRONZE_WEBHOOK_EVENTS),
        row_filter=And(
            GreaterThanOrEqual("received_at", lo.isoformat()),
            LessThan("received_at", hi.isoformat()),
        ),
    )
    return pl.from_arrow(rows)


def run_backfill(start: date, end: date, lh: stages.Lakehouse | None = None) -> dict[str, Any]:
    """Rebuild silver and gold for bronze deliveries received from ``start`` to ``end``."""
    from pyiceberg.expressions import In

    from ml.scoring import score_events
    from warehouse.io import replace_partition

    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    lh = lh or stages.Lakehouse()
    bronze = _bronze_days(lh, start, end)
    if bronze.is_empty():
        return {"bronze_rows": 0, "silver_rows": 0, "scores": 0}
    now = datetime.now(UTC)
    split = stages.split_bronze(lh, bronze, now)
    events = split.events
    ids = events["event_id"].to_list()
    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    # only the silver rows of events this range produced are replaced
    replace_partition(
        silver,
        events.to_arrow(),
        row_filter=In("event_id", ids),
        summary={"lakehouse.backfill": f"{start}..{end}"},
    )
    result = score_events(
        events, stages.history_for(silver, events), stages.champions(), scored_at=now
    )
    replace_partition(
        lh.table(T.GOLD_PAYMENT_SCORES),
        result.scores.to_arrow(),
        row_filter=In("event_id", ids),
        summary={"lakehouse.backfill": f"{start}..{end}"},
    )
    lh.refresh()
    days = events["provider_created_at"].dt.date().unique().to_list()
    daily, _ = stages.rebuild_days(lh, days, summary={"lakehouse.backfill": f"{start}..{end}"})
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
