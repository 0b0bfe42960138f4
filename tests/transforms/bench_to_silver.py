"""Micro-benchmark of ``to_silver`` (not collected by pytest).

    .venv/bin/python -m tests.transforms.bench_to_silver [--rows 200000] [--malformed 0.01]

Bodies come from the simulator (``generate_payloads``), routed and landed like the receiver and
the bronze loader do; the figure excludes generating them. Set ``POLARS_MAX_THREADS=1`` for a
one-core number.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import polars as pl

from quality.contracts import check_rows
from simulator.stream import generate_payloads
from tests.support.bronze import bronze_frame
from transforms.events import to_silver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--malformed", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--broken", type=float, default=0.0, help="share of non-DLQ rows with truncated JSON"
    )
    parser.add_argument("--contract", action="store_true", help="apply the Pandera row contract")
    args = parser.parse_args()
    unique = min(args.rows, 50_000)
    bodies = [p.body for p in generate_payloads(unique, seed=7, malformed_fraction=args.malformed)]
    one = bronze_frame(bodies)
    copies = [  # distinct event ids in every copy, so nothing is deduplicated away
        one.with_columns(
            pl.col("offset") + i * unique,
            pl.col("delivery_id") + f"/{i}",
            pl.col("payload").str.replace('"id":"evt_', f'"id":"evt_{i}x', literal=True),
            pl.col("event_id").str.replace("evt_", f"evt_{i}x", literal=True),
        )
        for i in range(-(-args.rows // unique))
    ]
    bronze = pl.concat(copies).head(args.rows)
    if args.broken:  # the worst case: bad JSON the receiver did not route to the DLQ
        hit = pl.int_range(pl.len()) % round(1 / args.broken) == 0
        cut = pl.col("payload").str.slice(0, 100)
        bronze = bronze.with_columns(pl.when(hit).then(cut).otherwise("payload").alias("payload"))
    contract = check_rows if args.contract else None
    mb = bronze["payload"].str.len_bytes().sum() / 1e6
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        split = to_silver(bronze, processed_at=datetime.now(UTC), row_contract=contract)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{bronze.height:,} rows ({mb:,.0f} MB): wall {wall:.2f} s "
            f"({bronze.height / wall:,.0f} rows/s), cpu {cpu:.2f} s "
            f"({bronze.height / cpu:,.0f} rows/cpu-s)  {split.counts}"
        )


if __name__ == "__main__":
    main()
