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


def keyed_windows(
    frame: pl.DataFrame, spec: KeyedWindows, lookback_s: int, wanted: pl.Expr | None = None
) -> pl.DataFrame:
    """One row per row of ``frame`` where ``wanted`` holds (all rows by default; same order)
    with the features of ``spec``; nothing older than ``lookback_s`` seconds is read (a missing
    "hours since" is ``lookback_s`` in hours).

    Every row counts in the windows of the rows after it, but the windows themselves (binary
    searches and gathers) are only worked out for the wanted rows: scoring a batch against a
    month of history costs the history's sort and cumulative sums, not its windows."""
    sums = sorted({c for _, c, _ in spec.sums})
    values = sorted(set(sums) | {c for _, c in spec.hours_since})
    want = pl.lit(True) if wanted is None else wanted.fill_null(False)
    s = (
        frame.select(_key_code(spec.keys), "_t", *values, want.alias("_want"))
        .with_row_index("_i")
        .sort("_code", "_t")
    )
    start = pl.col("_code").cast(pl.Int64) * 2**32
    s = s.with_columns(_start=start, _packed=start + (pl.col("_t") - pl.col("_t").min()))
    # over every row, in (key, time) order: exclusive cumulative sums, last flagged position
    full = s.select(
        "_packed",
        *(_before(c).alias(f"_cum_{c}") for c in sums),
        *(_last_flagged(flag).alias(f"_last_{flag}") for _, flag in spec.hours_since),
    )
    q = s.filter("_want").select("_i", "_packed", "_start")
    windows = {w for _, _, w in spec.sums} | ({lookback_s} if spec.since_first else set())
    hi = full["_packed"].search_sorted(q["_packed"], side="left").cast(pl.Int64)
    lo = {
        w: full["_packed"]
        .search_sorted(
            q.select(pl.max_horizontal(pl.col("_packed") - w, "_start")).to_series(), side="left"
        )
        .cast(pl.Int64)
        for w in windows
    }
    columns = [q["_i"]]
    for name, column, window in spec.sums:
        cum = full[f"_cum_{column}"]
        columns.append((cum.gather(hi) - cum.gather(lo[window])).alias(name))
    columns += _hours_since(spec, lookback_s, full, q, hi)
    columns += _since_first(spec, lookback_s, full, q, hi, lo)
    return pl.DataFrame(columns).sort("_i").drop("_i")


def _before(column: str) -> pl.Expr:
    """Sum of ``column`` over the rows before each row (in the frame's order)."""
    return pl.col(column).cast(pl.Float64).cum_sum().shift(1, fill_value=0.0)


def _last_flagged(flag: str) -> pl.Expr:
    """The packed time of the latest row up to each row whose ``flag`` is set."""
    return pl.when(pl.col(flag) > 0).then(pl.col("_packed")).forward_fill()


def _hours_since(
    spec: KeyedWindows, lookback_s: int, full: pl.DataFrame, q: pl.DataFrame, hi: pl.Series
) -> list[pl.Series]:
    """Hours since the key's last flagged row before t (``lookback_s`` in hours if none)."""
    out = []
    for name, flag in spec.hours_since:
        previous = full[f"_last_{flag}"].gather((hi - 1).clip(0))
        age = q["_packed"] - previous
        ok = ((hi > 0) & (previous >= q["_start"]) & (age <= lookback_s)).fill_null(False)
        hours = pl.select(pl.when(ok).then(age / 3600).otherwise(lookback_s / 3600)).to_series()
        out.append(hours.alias(name))
    return out


def _since_first(
    spec: KeyedWindows,
    lookback_s: int,
    full: pl.DataFrame,
    q: pl.DataFrame,
    hi: pl.Series,
    lo: dict[int, pl.Series],
) -> list[pl.Series]:
    """Age of the key's first row in [t - lookback, t), in the spec's unit (0 if none)."""
    if not spec.since_first:
        return []
    name, unit = spec.since_first
    first = lo[lookback_s]
    age = (q["_packed"] - full["_packed"].gather(first)) / unit
    return [pl.select(pl.when(hi > first).then(age).otherwise(0.0)).to_series().alias(name)]


def _key_code(keys: tuple[str, ...]) -> pl.Expr:
    """A dense integer per key; a row with a null key part is a key of its own."""
    missing = pl.any_horizontal(pl.col(k).is_null() for k in keys)
    hashed = pl.when(missing).then(pl.col("event_id").hash(7)).otherwise(pl.struct(keys).hash(7))
    return hashed.rank("dense").alias("_code")
