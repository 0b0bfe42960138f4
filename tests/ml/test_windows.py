"""Windowed aggregates per key: strictly earlier rows of the same key, within the window — checked
against a brute-force oracle, and for the rows asked for only, equal to the full computation."""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml.windows import KeyedWindows, keyed_windows

H, D = 3600, 86400
LOOKBACK = 30 * D
SPEC = KeyedWindows(
    ("customer_id",),
    sums=(("attempts_24h", "_attempt", D), ("amount_7d", "_amount", 7 * D)),
    hours_since=(("hours_since_success", "_success"),),
    since_first=("days_seen", D),
)


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    t0 = 1_700_000_000
    return pl.DataFrame(
        {
            "event_id": [f"evt_{i}" for i in range(n)],
            # few customers, some unknown (a null key is a key of its own)
            "customer_id": [rng.choice(["a", "b", "c", None]) for _ in range(n)],
            # ties on purpose: several rows in the same second
            "_t": [t0 + rng.randrange(0, 40 * D, 1800) for _ in range(n)],
            "_attempt": [rng.randint(0, 1) for _ in range(n)],
            "_amount": [float(rng.randint(0, 500)) for _ in range(n)],
            "_success": [rng.randint(0, 1) for _ in range(n)],
        }
    )


def _oracle(frame: pl.DataFrame) -> pl.DataFrame:
    """Row by row, the definition: rows of the same key strictly before t, within the window."""
    rows = frame.to_dicts()
    out = []
    for row in rows:
        t = row["_t"]

        def same(other: dict, row: dict = row) -> bool:
            if row["customer_id"] is None:
                return other is row
            return other["customer_id"] == row["customer_id"]

        def earlier(w: int, t: int = t, same=same) -> list[dict]:
            return [o for o in rows if same(o) and t - w <= o["_t"] < t]

        successes = [o["_t"] for o in earlier(LOOKBACK) if o["_success"]]
        seen = [o["_t"] for o in earlier(LOOKBACK)]
        out.append(
            {
                "attempts_24h": float(sum(o["_attempt"] for o in earlier(D))),
                "amount_7d": float(sum(o["_amount"] for o in earlier(7 * D))),
                "hours_since_success": (t - max(successes)) / 3600 if successes else LOOKBACK / H,
                "days_seen": (t - min(seen)) / D if seen else 0.0,
            }
        )
    return pl.DataFrame(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_row_sees_only_earlier_rows_of_its_key_within_the_window(seed: int) -> None:
    frame = _frame(300, seed)
    assert_frame_equal(keyed_windows(frame, SPEC, LOOKBACK), _oracle(frame), check_dtypes=False)


@pytest.mark.parametrize("seed", [4, 5])
def test_windows_of_the_rows_asked_for_equal_the_full_computation(seed: int) -> None:
    frame = _frame(2000, seed).with_columns(
        _q=pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.int_range(pl.len()))
    )
    wanted = pl.col("_q").is_not_null()

    some = keyed_windows(frame, SPEC, LOOKBACK, wanted=wanted)

    every = keyed_windows(frame, SPEC, LOOKBACK).filter(frame.select(wanted).to_series())
    assert some.height == frame.filter(wanted).height
    assert_frame_equal(some, every)
