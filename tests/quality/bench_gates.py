"""Cost of a gate (not collected by pytest): the first call in a fresh process (imports Great
Expectations, builds the context and suites) and warm calls on ``--rows`` silver rows.

    .venv/bin/python -m tests.quality.bench_gates [--rows 100000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import polars as pl

from quality.gates import gate
from quality.suites import GateParams


def silver_rows(n: int) -> pl.DataFrame:
    now = datetime.now(UTC)
    return pl.DataFrame(
        {
            "event_id": [f"stripe:evt_{i:024d}" for i in range(n)],
            "currency": ["USD", "JPY", "KWD", "EUR"] * (n // 4) + ["USD"] * (n % 4),
            "amount_minor": pl.int_range(n, eager=True),
            "event_type": ["payment.succeeded"] * n,
            "provider_created_at": [now - timedelta(seconds=i) for i in range(n)],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    batch, params = silver_rows(args.rows), GateParams()
    start = time.perf_counter()
    result = gate(batch, "silver_payment_events", params)
    print(
        f"first gate (import + context + {args.rows:,} rows): {time.perf_counter() - start:.2f} s"
    )
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = gate(batch, "silver_payment_events", params)
        print(
            f"warm gate, {args.rows:,} rows: {time.perf_counter() - start:.3f} s ({result.success})"
        )


if __name__ == "__main__":
    main()
