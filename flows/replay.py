"""``replay-quarantine``: release quarantined rows after a fix and run them through silver again.

Idempotent: the replay reads the original deliveries from bronze (the source of truth), appends
only events not yet in silver, and marks as released — with who and why — only the rows that now
pass; rows that still fail stay quarantined, unreleased, and are counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows import stages
from warehouse import tables as T


def _selected(quarantine: pl.DataFrame, codes: list[str] | None, ids: list[str] | None):
    if not codes and not ids:
        raise ValueError("say which rows to release: --code and/or --id")
    pending = quarantine.filter(pl.col("released_at").is_null())
    wanted = pl.lit(False)
    if codes:
        wanted = wanted | pl.col("error_code").is_in(codes)
    if ids:
        wanted = wanted | pl.col("quarantine_id").is_in(ids) | pl.col("delivery_id").is_in(ids)
    return pending.filter(wanted)


def run_replay(
    codes: list[str] | None = None,
    ids: list[str] | None = None,
    released_by: str = "operator",
    reason: str = "",
    lh: stages.Lakehouse | None = None,
) -> dict[str, Any]:
    """Replay the selected quarantine rows; return counts of replayed and still failing rows."""
    from pyiceberg.expressions import In

    from transforms.events import drop_seen
    from warehouse.io import append, replace_partition, scan

    lh = lh or stages.Lakehouse()
    q_table = lh.table(T.SILVER_QUARANTINE)
    quarantine = pl.from_arrow(scan(q_table))
    selected = _selected(quarantine, codes, ids) if quarantine.height else quarantine
    if selected.is_empty():
        return {"selected": 0, "replayed": 0, "still_failing": 0}
    deliveries = selected["delivery_id"].to_list()
    bronze = pl.from_arrow(
        scan(lh.table(T.BRONZE_WEBHOOK_EVENTS), row_filter=In("delivery_id", deliveries))
    )
    now = datetime.now(UTC)
    split = stages.split_bronze(lh, bronze, now)
    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    events, duplicates = drop_seen(split.events, stages.seen_event_ids(silver, split.events))
    passed = set(split.events["delivery_id"].to_list()) | set(
        split.not_modelled["delivery_id"].to_list()
    )
    note = f"{released_by}: {reason}"
    append(silver, events.to_arrow(), summary={"lakehouse.replay": note})
    released = selected.filter(pl.col("delivery_id").is_in(list(passed))).with_columns(
        released_at=pl.lit(now), released_by=pl.lit(note)
    )
    if released.height:
        replace_partition(
            q_table,
            released.to_arrow(),
            row_filter=In("quarantine_id", released["quarantine_id"].to_list()),
            summary={"lakehouse.replay": note},
        )
    return {
        "selected": selected.height,
        "replayed": events.height,
        "already_in_silver": duplicates,
        "released": released.height,
        "still_failing": selected.height - released.height,
    }


@flow(name="replay-quarantine")
def replay_quarantine(
    codes: list[str] | None = None,
    ids: list[str] | None = None,
    released_by: str = "operator",
    reason: str = "",
) -> dict[str, Any]:
    """Release quarantined rows (by error code or id) after a fix and replay them into silver."""
    result = run_replay(codes=codes, ids=ids, released_by=released_by, reason=reason)
    get_run_logger().info("replay: %s", result)
    create_markdown_artifact(
        key="replay-quarantine",
        markdown="# Quarantine replay\n\n" + "\n".join(f"- {k}: {v}" for k, v in result.items()),
    )
    return result
