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

from flows.context import Lakehouse
from flows.stages import split_bronze
from transforms.events import drop_seen
from transforms.quarantine import pending, released
from warehouse import io, queries
from warehouse import tables as T


def run_replay(
    codes: list[str] | None = None,
    ids: list[str] | None = None,
    released_by: str = "operator",
    reason: str = "",
    lh: Lakehouse | None = None,
) -> dict[str, Any]:
    """Replay the selected quarantine rows; return counts of replayed and still failing rows."""
    lh = lh or Lakehouse()
    q_table = lh.table(T.SILVER_QUARANTINE)
    quarantine = queries.all_rows(q_table)
    selected = pending(quarantine, codes, ids) if quarantine.height else quarantine
    if selected.is_empty():
        return {"selected": 0, "replayed": 0, "still_failing": 0}
    bronze_table = lh.table(T.BRONZE_WEBHOOK_EVENTS)
    bronze = queries.rows_with(bronze_table, "delivery_id", selected["delivery_id"].to_list())
    now = datetime.now(UTC)
    split = split_bronze(lh, bronze, now)
    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    events, duplicates = drop_seen(split.events, queries.seen_event_ids(silver, split.events))
    passed = pl.concat([split.events["delivery_id"], split.not_modelled["delivery_id"]])
    note = f"{released_by}: {reason}"
    io.append(silver, events.to_arrow(), summary={"lakehouse.replay": note})
    done = released(selected, passed, note, now)
    if done.height:
        ids_done = done["quarantine_id"].to_list()
        summary = {"lakehouse.replay": note}
        io.replace_rows(q_table, done.to_arrow(), "quarantine_id", ids_done, summary=summary)
    return {
        "selected": selected.height,
        "replayed": events.height,
        "already_in_silver": duplicates,
        "released": done.height,
        "still_failing": selected.height - done.height,
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
