"""``maintenance``: compact small files per partition and expire old snapshots, every table.

Idempotent: compaction only touches partitions with many small files, and expiry never removes a
snapshot a downstream layer still reads from (its watermark on this table is protected), so
running it at any time, twice or concurrently with the micro-batch, loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.context import Lakehouse
from warehouse import tables as T
from warehouse import watermarks
from warehouse.maintenance import compact, expire_snapshots

#: Which tables read which: a table's snapshots that these readers' watermarks point at are kept.
READERS: dict[T.TableSpec, tuple[T.TableSpec, ...]] = {
    T.BRONZE_WEBHOOK_EVENTS: (T.SILVER_PAYMENT_EVENTS,),
    T.SILVER_PAYMENT_EVENTS: (T.GOLD_PAYMENT_SCORES, T.GOLD_MERCHANT_DAILY),
}


def _protected(lh: Lakehouse, spec: T.TableSpec) -> set[int]:
    marks = (watermarks.watermark(lh.table(reader)) for reader in READERS.get(spec, ()))
    return {m for m in marks if m is not None}


def run_maintenance(
    older_than_hours: float = 24.0, retain_last: int = 10, min_files: int = 8
) -> list[dict[str, Any]]:
    """Compact and expire every table; one result row per table."""
    lh = Lakehouse()
    cutoff = datetime.now(UTC) - timedelta(hours=older_than_hours)
    rows = []
    for spec in T.ALL_TABLES:
        table = lh.table(spec)
        if table.current_snapshot() is None:
            continue
        compacted = compact(table, min_files=min_files)
        expired = expire_snapshots(table, cutoff, retain_last, protect=_protected(lh, spec))
        rows.append({"table": spec.identifier_str, **asdict(compacted), **asdict(expired)})
    return rows


@flow(name="maintenance")
def maintenance(older_than_hours: float = 24.0, retain_last: int = 10, min_files: int = 8) -> list:
    """Compact small files and expire snapshots older than ``older_than_hours``."""
    rows = run_maintenance(older_than_hours, retain_last, min_files)
    get_run_logger().info("maintenance: %s", rows)
    table = [{k: str(v) for k, v in r.items() if k != "snapshot_ids"} for r in rows]
    create_table_artifact(key="maintenance", table=table, description="per table")
    return rows
