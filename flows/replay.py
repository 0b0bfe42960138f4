"""``replay-quarantine``: release quarantined rows after a fix and run them through silver again.

The replayed deliveries go through the micro-batch's own silver pass (``flows.silver``: the same
row rules, dedupe and gates, one code path). Its quarantine-share threshold is lifted: every row
of a replay was quarantined before, so a high share says nothing new; a gate that fails for
another reason holds the replay (``GateFailed``) and nothing is released.

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
from flows.silver import gate_params, silver_pass
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
    bronze = bronze.unique("delivery_id", keep="first", maintain_order=True)  # one replay each
    now = datetime.now(UTC)
    params = gate_params(lh.settings, max_quarantine_share=1.0)
    result = silver_pass(lh, bronze, now, params=params)
    note = f"{released_by}: {reason}"
    summary = {"lakehouse.replay": note}
    io.append(lh.table(T.SILVER_PAYMENT_EVENTS), result.events.to_arrow(), summary=summary)
    still_failing = result.quarantine["delivery_id"]
    passed = bronze.filter(~pl.col("delivery_id").is_in(still_failing.implode()))["delivery_id"]
    done = released(selected, passed, note, now)
    if done.height:
        ids_done = done["quarantine_id"].to_list()
        io.replace_rows(q_table, done.to_arrow(), "quarantine_id", ids_done, summary=summary)
    return {
        "selected": selected.height,
        "replayed": result.events.height,
        "already_in_silver": result.duplicates,
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
