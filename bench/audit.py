"""Benchmark: ``lakehouse audit`` over a large lakehouse (default 10,000,000 bronze rows).

    .venv/bin/python bench/audit.py [--rows 10000000] [--days 10] [--keep DIR]

Builds a synthetic, complete lakehouse in a temporary ``LAKEHOUSE_HOME`` (or ``--keep``): bronze
rows over 6 topics × 3 partitions with contiguous offsets (committed by the bronze loader's own
``append_deliveries``, one day per commit), silver events for 99 % of them, the rest quarantined,
one score per event and ``gold.merchant_daily`` built from silver with ``transforms``; the
watermarks as the stages leave them. Then times each section of the audit and the whole.

No broker runs: the broker's end offsets are a stand-in equal to the offsets bronze recorded
(the audit's reads of the tables are what is timed; the end offsets are one request per
partition).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

console = Console()
TOPICS = [
    f"webhooks.stripe.{t}" for t in ("payment_intent", "charge", "refund", "dispute", "other")
] + ["webhooks.dlq"]
PARTITIONS = 3
START = datetime(2026, 11, 1, tzinfo=UTC)


def _text(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def day_rows(day: int, per_day: int, first: int, offsets: dict[str, int]) -> dict[str, pa.Table]:
    """One day's rows of every table: ``per_day`` deliveries numbered from ``first``."""
    from transforms.merchant_daily import merchant_daily  # the data path: after the settings
    from warehouse import tables as T

    n = np.arange(first, first + per_day)
    slot = n % (len(TOPICS) * PARTITIONS)
    topic = np.array(TOPICS)[slot // PARTITIONS]
    partition = (slot % PARTITIONS).astype(np.int32)
    offset = np.empty(per_day, dtype=np.int64)
    for s in range(len(TOPICS) * PARTITIONS):  # contiguous offsets per partition
        key = f"{TOPICS[s // PARTITIONS]}:{s % PARTITIONS}"
        where = slot == s
        count = int(where.sum())
        offset[where] = np.arange(offsets.get(key, 0), offsets.get(key, 0) + count)
        offsets[key] = offsets.get(key, 0) + count
    ts = T.BRONZE_WEBHOOK_EVENTS.arrow_schema.field("received_at").type
    amount_type = T.SILVER_PAYMENT_EVENTS.arrow_schema.field("amount").type
    midnight = pa.scalar(START + timedelta(days=day), ts)
    received = pc.add(pa.repeat(midnight, per_day), pa.array((n % 86_000).astype("m8[s]")))
    delivery = pc.binary_join_element_wise(
        pa.array(topic),
        pc.cast(pa.array(partition), pa.string()),
        pc.cast(pa.array(offset), pa.string()),
        ":",
    )
    event = _text("evt_", n)
    bronze = pa.table(
        {
            "delivery_id": delivery,
            "provider": pa.repeat(pa.scalar("stripe"), per_day),
            "event_id": event,
            "event_type": pa.repeat(pa.scalar("payment_intent.succeeded"), per_day),
            "topic": pa.array(topic),
            "partition": pa.array(partition),
            "offset": pa.array(offset),
            "payload": pa.repeat(pa.scalar("{}"), per_day),
            "received_at": received,
            "ingested_at": received,
        }
    )
    bad = n % 100 == 0
    good = pa.array(~bad)
    merchants = _text("acct_", n % 500)
    silver = pa.table(
        {
            "event_id": _text("stripe:evt_", n),
            "provider": pa.repeat(pa.scalar("stripe"), per_day),
            "provider_event_id": event,
            "event_type": pa.repeat(pa.scalar("payment.succeeded"), per_day),
            "provider_event_type": pa.repeat(pa.scalar("payment_intent.succeeded"), per_day),
            "object_id": _text("pi_", n),
            "merchant_id": merchants,
            "amount_minor": pa.array(n % 10_000 + 100),
            "currency": pa.repeat(pa.scalar("USD"), per_day),
            "amount": pc.cast(pc.divide(pa.array(n % 10_000 + 100.0), 100.0), amount_type),
            "provider_created_at": received,
            "received_at": received,
            "processed_at": received,
            "delivery_id": delivery,
            "schema_version": pa.repeat(pa.scalar(1, pa.int32()), per_day),
        }
    ).filter(good)
    quarantine = pa.table(
        {
            "quarantine_id": pc.binary_join_element_wise("silver", delivery, ":"),
            "delivery_id": delivery,
            "layer": pa.repeat(pa.scalar("silver"), per_day),
            "error_code": pa.repeat(pa.scalar("INVALID_JSON"), per_day),
            "payload": pa.repeat(pa.scalar("{"), per_day),
            "topic": pa.array(topic),
            "partition": pa.array(partition),
            "offset": pa.array(offset),
            "received_at": received,
            "quarantined_at": received,
        }
    ).filter(pa.array(bad))
    scores = silver.select(["event_id", "event_type", "merchant_id", "provider_created_at"])
    scores = scores.append_column("scored_at", scores["provider_created_at"])
    daily = merchant_daily(pl.from_arrow(silver), None, updated_at=datetime.now(UTC)).to_arrow()
    return {
        "bronze": bronze,
        "silver": silver,
        "quarantine": quarantine,
        "scores": scores,
        "daily": daily,
    }


def build(rows: int, days: int) -> None:
    """The synthetic lakehouse, one day per commit of every table."""
    from warehouse import io, watermarks
    from warehouse import tables as T
    from warehouse.bronze import append_deliveries
    from warehouse.catalog import ensure_tables, get_catalog

    tables = ensure_tables(get_catalog())
    specs = {
        "bronze": T.BRONZE_WEBHOOK_EVENTS,
        "silver": T.SILVER_PAYMENT_EVENTS,
        "quarantine": T.SILVER_QUARANTINE,
        "scores": T.GOLD_PAYMENT_SCORES,
        "daily": T.GOLD_MERCHANT_DAILY,
    }
    t = {name: tables[spec.identifier_str] for name, spec in specs.items()}
    offsets: dict[str, int] = {}
    per_day = rows // days
    for day in range(days):
        started = dict(offsets)
        part = day_rows(day, per_day, day * per_day, offsets)
        starts = {k: started.get(k, 0) for k in offsets}
        append_deliveries(t["bronze"], part["bronze"], starts, dict(offsets))
        mark = watermarks.source_summary(t["bronze"].current_snapshot().snapshot_id)
        io.append(t["quarantine"], part["quarantine"], mark)
        io.append(t["silver"], part["silver"], mark)
        gold_mark = watermarks.source_summary(t["silver"].current_snapshot().snapshot_id)
        io.append(t["scores"], part["scores"], gold_mark)
        io.append(t["daily"], part["daily"], gold_mark)
        console.print(f"day {day + 1}/{days}: {(day + 1) * per_day:,} bronze rows")


def timed_audit() -> list[tuple[str, float, bool]]:
    """Each section of ``flows.audit.SECTIONS`` on one connection: title, seconds, verdict."""
    import flows.audit as audit_flow
    from settings import get_settings
    from warehouse import tables as T
    from warehouse import watermarks
    from warehouse.catalog import get_catalog
    from warehouse.duck import connect
    from warehouse.queries import existing_table

    catalog = get_catalog()
    tables = {s.identifier_str: existing_table(catalog, s) for s in T.ALL_TABLES}
    recorded = watermarks.recorded_offsets(tables[T.BRONZE_WEBHOOK_EVENTS.identifier_str])
    audit_flow.end_offsets = lambda *_a, **_k: recorded  # stand-in: no broker (see the top)
    began = time.perf_counter()
    con = connect(catalog)
    results = [("DuckDB connect (views over every table)", time.perf_counter() - began, True)]
    done = audit_flow.Audited(get_settings(), catalog, con, tables)
    for check in audit_flow.SECTIONS:
        began = time.perf_counter()
        section = check(done)
        results.append((section.title, time.perf_counter() - began, section.ok))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="build in (or reuse) this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lakehouse-audit-"))
    os.environ["LAKEHOUSE_HOME"] = str(folder / "home")
    built = (folder / "home" / "catalog.db").exists()
    if not built:
        started = time.perf_counter()
        build(args.rows, args.days)
        console.print(f"built in {time.perf_counter() - started:.0f} s: {folder}")
    sections = timed_audit()
    title = f"audit of {args.rows:,} bronze rows"
    table = Table("step", "seconds", "ok", title=title, title_justify="left")
    for name, seconds, ok in sections:
        table.add_row(name, f"{seconds:.2f}", "yes" if ok else "[red]NO[/red]")
    console.print(table)
    console.print(f"whole audit: {sum(s for _, s, _ in sections):.1f} s")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
