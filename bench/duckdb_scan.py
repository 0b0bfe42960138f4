"""Benchmark: a DuckDB aggregate over 10,000,000 silver rows through ``warehouse.connect()``.

Appends silver-shaped rows (generated vectorized, a few commits of a few million rows) to
``silver.payment_events`` in a temporary warehouse, then times ``connect()`` and
``SUM(amount), COUNT(*) GROUP BY merchant_id, currency`` cold (first run) and warm (best of
the next runs). Goal: under 1 s on 2 cores.

    .venv/bin/python bench/duckdb_scan.py [--rows 10000000] [--commits 4]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from settings import Settings
from transforms.schemas import ARROW_AMOUNT, ARROW_TS
from warehouse.catalog import get_catalog
from warehouse.duck import connect
from warehouse.io import append, ensure_table
from warehouse.tables import SILVER_PAYMENT_EVENTS

QUERY = """
SELECT merchant_id, currency, SUM(amount) AS volume, COUNT(*) AS events
FROM silver.payment_events
GROUP BY merchant_id, currency
"""
START_US = 1_790_000_000 * 1_000_000  # 2026-09-21 UTC
DAYS = 30
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "SEK"]
TYPES = ["payment.succeeded", "payment.failed", "refund.created", "dispute.created"]


def silver_rows(offset: int, n: int, rows_total: int, rng: np.random.Generator) -> pa.Table:
    """``n`` silver payment events with ids ``offset…``, 1,000 merchants; ``rows_total`` rows
    span 30 days, so each batch covers its share of the days."""
    ids = pc.cast(pa.array(np.arange(offset, offset + n)), pa.string())
    minor = rng.integers(100, 1_000_000, n)
    first_day = offset * DAYS // rows_total  # data arrives roughly in time order
    days = max(1, n * DAYS // rows_total)
    day_us = ((first_day + rng.random(n) * days) * 86_400_000_000).astype(np.int64)
    at = pa.array(START_US + day_us, ARROW_TS)
    merchants = pa.array([f"acct_{i:04d}" for i in range(1_000)])

    def pick(values: list[str] | pa.Array, size: int | None = None) -> pa.Array:
        return pa.array(values).take(pa.array(rng.integers(0, size or len(values), n)))

    return pa.table(
        {
            "event_id": pc.binary_join_element_wise("stripe:evt_", ids, ""),
            "provider": pick(["stripe"]),
            "provider_event_id": pc.binary_join_element_wise("evt_", ids, ""),
            "event_type": pick(TYPES),
            "provider_event_type": pick(["payment_intent.succeeded", "charge.refunded"]),
            "object_id": pc.binary_join_element_wise("pi_", ids, ""),
            "merchant_id": pick(merchants),
            "customer_id": pc.binary_join_element_wise(
                "cus_", pc.cast(pa.array(rng.integers(0, 200_000, n)), pa.string()), ""
            ),
            "amount_minor": pa.array(minor),
            "currency": pick(CURRENCIES),
            "amount": _decimal(minor * 10),  # two-decimal currencies; ARROW_AMOUNT has scale 3
            "card_brand": pick(["visa", "mastercard", "amex"]),
            "status": pick(["succeeded", "requires_payment_method"]),
            "provider_created_at": at,
            "received_at": at,
            "processed_at": at,
            "delivery_id": pc.binary_join_element_wise(
                "webhooks.stripe.payment_intent:0:", ids, ""
            ),
            "schema_version": pa.array(np.ones(n, np.int32)),
        }
    )


def _decimal(unscaled: np.ndarray) -> pa.Array:
    """decimal128(20, 3) from non-negative unscaled int64 values, without Python objects."""
    words = np.zeros((len(unscaled), 2), dtype=np.int64)
    words[:, 0] = unscaled
    return pa.Array.from_buffers(ARROW_AMOUNT, len(unscaled), [None, pa.py_buffer(words)])


def load(home: Path, rows: int, commits: int) -> float:
    """Append ``rows`` in ``commits`` commits; seconds spent."""
    table = ensure_table(get_catalog(Settings(home=home)), SILVER_PAYMENT_EVENTS)
    rng = np.random.default_rng(7)
    started, per_commit = time.perf_counter(), -(-rows // commits)
    for offset in range(0, rows, per_commit):
        batch = silver_rows(offset, min(per_commit, rows - offset), rows, rng)
        t0 = time.perf_counter()
        append(table, batch, {"lakehouse.batch-id": f"bench-{offset}"})
        print(f"  commit of {batch.num_rows:,} rows: {time.perf_counter() - t0:.2f} s")
    return time.perf_counter() - started


def _cpu() -> float:
    """CPU seconds of this process, all threads (wall time suffers when the cores are shared)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), _cpu()
    run()
    return time.perf_counter() - wall, _cpu() - cpu


def query(home: Path, runs: int = 5) -> None:
    """Print connect() and query timings: cold (first run) and best warm run."""
    catalog = get_catalog(Settings(home=home))
    first, again = timed(lambda: connect(catalog)), timed(lambda: connect(catalog))
    con = connect(catalog)
    result = con.sql(QUERY).to_arrow_table()
    groups, counted = result.num_rows, pc.sum(result["events"]).as_py()
    con.close()
    con = connect(catalog)  # cold: a new connection, nothing cached by DuckDB
    timings = [timed(lambda: con.sql(QUERY).to_arrow_table()) for _ in range(runs)]
    warm = min(timings[1:])
    print(f"rows:      {counted:,} in {groups:,} merchant × currency groups")
    print(f"connect(): first in process {first[0]:.3f} s, then {again[0]:.3f} s wall")
    print(
        f"query:     cold {timings[0][0]:.3f} s wall ({timings[0][1]:.3f} s CPU), "
        f"warm {warm[0]:.3f} s wall ({warm[1]:.3f} s CPU); goal < 1 s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--commits", type=int, default=4)
    parser.add_argument("--home", type=Path, help="keep the warehouse here; reuse it if loaded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        home = args.home or Path(tmp)
        if not (home / "catalog.db").exists():
            print(f"loading {args.rows:,} silver rows in {args.commits} commits…")
            loaded = load(home, args.rows, args.commits)
            print(f"load:      {loaded:.1f} s ({args.rows / loaded:,.0f} rows/s)")
        query(home)


if __name__ == "__main__":
    main()
