"""Windowed aggregates per key over a time-ordered event frame, strictly before each row.

Rows are sorted by (key, second) and packed into one int64, ``key * 2**32 + second``; the window
[t - w, t) of a row is then two binary searches, and a sum over it a difference of cumulative sums.
Vectorized end to end: no per-group Python, no rolling joins. Input columns: ``event_id`` (a row
whose key has a null part is a key of its own), ``_t`` (unix seconds) and the value columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class KeyedWindows:
    """Aggregates, per row, over the earlier rows of the same key (strictly before it)."""

    keys: tuple[str, ...]
    sums: tuple[tuple[str, str, int], ...]  # feature, value column, window in seconds
    hours_since: tuple[tuple[str, str], ...] = ()  # feature, flag column: hours since the last one
    since_first: tuple[str, int] | None = None  # feature, unit in seconds: age of the first row


def keyed_windows(frame: pl.DataFrame, spec: KeyedWindows, lookback_s: int) -> pl.DataFrame:
    """One row per row of ``frame`` (same order) with the features of ``spec``; nothing older
    than ``lookback_s`` seconds is read (a missing "hours since" is ``lookback_s`` in hours)."""
    values = {c for _, c, _ in spec.sums} | {c for _, c in spec.hours_since}
    s = frame.select(_key_code(spec.keys), "_t", *values).with_row_index("_i").sort("_code", "_t")
    start = s["_code"].cast(pl.Int64) * 2**32
    packed = start + (s["_t"] - s["_t"].min())
    windows = {w for _, _, w in spec.sums} | ({lookback_s} if spec.since_first else set())
    bounds = [pl.max_horizontal(pl.col("_packed") - w, "_start").alias(f"_b{w}") for w in windows]
    s = s.with_columns(packed.alias("_packed"), start.alias("_start")).with_columns(*bounds)
    s = s.with_columns(
        _hi=pl.col("_packed").search_sorted(pl.col("_packed"), side="left").cast(pl.Int64),
        **{
            f"_lo{w}": pl.col("_packed").search_sorted(pl.col(f"_b{w}"), side="left").cast(pl.Int64)
            for w in windows
        },
    )
    return (
        s.select(
            "_i", *_sums(spec), *_hours_since(spec, lookback_s), *_since_first(spec, lookback_s)
        )
        .sort("_i")
        .drop("_i")
    )


def _sums(spec: KeyedWindows) -> list[pl.Expr]:
    """Sum of a column over [t - w, t): exclusive cumulative sums at the window's two ends."""
    out = []
    for name, column, window in spec.sums:
        before = pl.col(column).cast(pl.Float64).cum_sum().shift(1, fill_value=0.0)
        out.append(
            (before.gather(pl.col("_hi")) - before.gather(pl.col(f"_lo{window}"))).alias(name)
        )
    return out


def _hours_since(spec: KeyedWindows, lookback_s: int) -> list[pl.Expr]:
    """Hours since the key's last flagged row before t (``lookback_s`` in hours if none)."""
    out = []
    for name, flag in spec.hours_since:
        last = pl.when(pl.col(flag) > 0).then(pl.col("_packed")).forward_fill()
        previous = last.gather((pl.col("_hi") - 1).clip(0))
        age = pl.col("_packed") - previous
        ok = (pl.col("_hi") > 0) & (previous >= pl.col("_start")) & (age <= lookback_s)
        out.append(pl.when(ok).then(age / 3600).otherwise(lookback_s / 3600).alias(name))
    return out


def _since_first(spec: KeyedWindows, lookback_s: int) -> list[pl.Expr]:
    """Age of the key's first row in [t - lookback, t), in the spec's unit (0 if none)."""
    if not spec.since_first:
        return []
    name, unit = spec.since_first
    lo = pl.col(f"_lo{lookback_s}")
    age = (pl.col("_packed") - pl.col("_packed").gather(lo)) / unit
    return [pl.when(pl.col("_hi") > lo).then(age).otherwise(0.0).alias(name)]


def _key_code(keys: tuple[str, ...]) -> pl.Expr:
    """A dense integer per key; a row with a null key part is a key of its own."""
    missing = pl.any_horizontal(pl.col(k).is_null() for k in keys)
    hashed = pl.when(missing).then(pl.col("event_id").hash(7)).otherwise(pl.struct(keys).hash(7))
    return hashed.rank("dense").alias("_code")
