"""Online features: the features ``ml.features.build_features`` gives an event, worked out for one
event at request time from an in-memory index of the history, with numpy and dicts (no Polars per
request: a one-row Polars pass costs milliseconds, this a few tens of microseconds).

``OnlineIndex.build(history)`` prepares the history once per refresh, vectorized (the same
``prepared_history`` the batch path uses: flags, order ids, local clocks, the card filled from its
charge's event, ``_card_first``) and, per keyed window of ``ml.features.WINDOWS``, packs its rows
as ``ml.windows`` does: sorted ``key * 2**32 + second``, exclusive cumulative sums of the values,
the last flagged position of each "hours since" flag. A request is then two binary searches per
window size and a difference of sums, exactly the arithmetic of ``ml.windows.keyed_windows``;
``_own`` and ``_derived`` mirror ``ml.features._own_features`` and ``_derived`` line by line.
``tests/serving/test_parity.py`` holds the two paths together on events gold scored.

An event (``OnlineEvent``) is a mapping of the silver columns ``ml.features.INPUT_COLUMNS`` (a
missing one is null); only rows of the history strictly before its second count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter

import numpy as np
import polars as pl

from ml import features as F
from ml.windows import KeyedWindows

OnlineEvent = Mapping[str, object]
Features = dict[str, object]
_PACK = 2**32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDER_ID = re.compile(F.ORDER_ID_PATTERN)
_CODES = {
    "decline_code_cat": ("decline_code", F.DECLINE_CODES),
    "card_brand_cat": ("card_brand", F.CARD_BRANDS),
    "customer_country_cat": ("customer_country", F.COUNTRIES),
}


@dataclass(frozen=True)
class _Layout:
    """Where each feature of a spec reads, worked out once: per sum its value column in
    ``cums`` and its window's position among the lower bounds."""

    key: Callable[[Mapping[str, object]], object]  # the event's key: a value, or a tuple
    sizes: tuple[int, ...]  # the window sizes, the look-back included (one lower bound each)
    sums: tuple[tuple[str, int, int], ...]  # feature, value column, window position
    lookback: int  # the look-back's position in ``sizes``
    empty: dict[str, float]  # the features of a key without history

    @classmethod
    def of(cls, spec: KeyedWindows, columns: tuple[str, ...], lookback_s: int) -> _Layout:
        sizes = tuple(sorted({w for _, _, w in spec.sums} | {lookback_s}))
        empty = {name: 0.0 for name, _, _ in spec.sums}
        empty |= {name: lookback_s / 3600 for name, _ in spec.hours_since}
        if spec.since_first:
            empty[spec.since_first[0]] = 0.0
        return cls(
            key=itemgetter(*spec.keys),
            sizes=sizes,
            sums=tuple((n, columns.index(c), sizes.index(w)) for n, c, w in spec.sums),
            lookback=sizes.index(lookback_s),
            empty=empty,
        )


@dataclass(frozen=True)
class _WindowIndex:
    """One ``KeyedWindows`` spec over the history, packed for binary searches."""

    spec: KeyedWindows
    codes: dict[object, int]  # the key (a value, or a tuple of values) -> key code
    packed: np.ndarray  # int64, sorted: code * 2**32 + (second - t0)
    cums: np.ndarray  # float64 (rows + 1, value columns): sums over the rows before
    last: dict[str, np.ndarray]  # flag -> packed time of the latest flagged row so far, or -1
    layout: _Layout

    @classmethod
    def build(cls, frame: pl.DataFrame, spec: KeyedWindows, t0: int) -> _WindowIndex:
        columns = tuple(sorted({c for _, c, _ in spec.sums}))
        flags = [f for _, f in spec.hours_since]
        keyed = frame.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in spec.keys))
        keys = keyed.select(spec.keys).unique().with_row_index("_code")
        rows = (
            keyed.join(keys, on=list(spec.keys))
            .select(
                _packed=pl.col("_code").cast(pl.Int64) * _PACK + (pl.col("_t") - t0),
                **{c: pl.col(c).cast(pl.Float64) for c in columns},
                **{f"_flag_{f}": pl.col(f) > 0 for f in flags},
            )
            .sort("_packed")
        )
        cums = np.zeros((rows.height + 1, len(columns)))
        np.cumsum(rows.select(columns).to_numpy(), axis=0, out=cums[1:])
        last = {
            f: rows.select(
                pl.when(pl.col(f"_flag_{f}")).then(pl.col("_packed")).forward_fill().fill_null(-1)
            )
            .to_series()
            .to_numpy()
            for f in flags
        }
        values = keys.select(spec.keys).rows() if len(spec.keys) > 1 else keys[spec.keys[0]]
        codes = dict(zip(values, keys["_code"].to_list(), strict=True))
        layout = _Layout.of(spec, columns, F.LOOKBACK_S)
        return cls(spec, codes, rows["_packed"].to_numpy(), cums, last, layout)

    def windows(self, event: Mapping[str, object], t: int) -> dict[str, float]:
        """The spec's features for an event at packed-relative second ``t``: the arithmetic of
        ``ml.windows.keyed_windows`` for one row (a handful of scalars: plain Python is faster
        than numpy's per-call overhead here)."""
        layout = self.layout
        code = self.codes.get(layout.key(event))
        if code is None:  # no history for this key (or a null key part): empty windows
            return dict(layout.empty)
        start = code * _PACK
        q = start + t
        bounds = self.packed.searchsorted([q, *(max(q - w, start) for w in layout.sizes)])
        hi, *lo = bounds.tolist()
        top, bottoms = self.cums[hi].tolist(), [self.cums[b].tolist() for b in lo]
        out = {name: top[c] - bottoms[w][c] for name, c, w in layout.sums}
        lookback_s = layout.sizes[layout.lookback]
        for name, flag in self.spec.hours_since:
            previous = int(self.last[flag][hi - 1]) if hi > 0 else -1
            age = q - previous
            ok = hi > 0 and previous >= start and age <= lookback_s
            out[name] = age / 3600 if ok else lookback_s / 3600
        if self.spec.since_first:
            name, unit = self.spec.since_first
            first = lo[layout.lookback]
            out[name] = (q - int(self.packed[first])) / unit if hi > first else 0.0
        return out


@dataclass(frozen=True)
class OnlineIndex:
    """The history's windows, ready for one event at a time."""

    windows: tuple[_WindowIndex, ...]
    charges: dict[tuple[str, int], tuple]  # (charge id, second) -> ``CARD_FILL_COLUMNS`` maxima
    t0: int
    rows: int
    newest: datetime | None

    @classmethod
    def build(cls, history: pl.DataFrame) -> OnlineIndex:
        """Index ``history`` (silver rows; ``INPUT_COLUMNS`` are read, others ignored)."""
        frame = F.prepared_history(history)
        t0 = (frame["_t"].min() or 0) - 2**30  # any request from 34 years before packs >= 0
        fill = F.CARD_FILL_COLUMNS
        charges = (
            frame.filter(pl.col("charge_id").is_not_null())
            .group_by("charge_id", "_t")
            .agg(pl.col(c).max() for c in fill)
            .filter(pl.any_horizontal(pl.col(c).is_not_null() for c in fill))
        )
        return cls(
            windows=tuple(_WindowIndex.build(frame, spec, t0) for spec in F.WINDOWS),
            charges={(r[0], r[1]): r[2:] for r in charges.iter_rows()},
            t0=t0,
            rows=frame.height,
            newest=frame["provider_created_at"].max(),
        )

    def features(self, event: OnlineEvent) -> Features:
        """The ``build_features`` columns of ``event`` (its keys, ``_clock``, every feature)."""
        created = event["provider_created_at"]
        if not isinstance(created, datetime) or created.tzinfo is None:
            raise ValueError("provider_created_at must be a timezone-aware datetime")
        second = math.floor(created.timestamp())
        row = self._filled(event, second)
        out: Features = {k: row.get(k) for k in F.KEY_COLUMNS}
        out |= _own(row)
        windows: dict[str, float] = {}
        for index in self.windows:
            windows |= index.windows(row, second - self.t0)
        return out | windows | _derived(row, windows)

    def _filled(self, event: OnlineEvent, second: int) -> dict[str, object]:
        """The event with its card filled from its charge's event of the same second and its
        order id (``ml.features._prepare``)."""
        row = {c: event.get(c) for c in F.INPUT_COLUMNS}
        if any(row[c] is None for c in F.CARD_FILL_COLUMNS) and row["charge_id"] is not None:
            known = self.charges.get((row["charge_id"], second))
            if known is not None:
                for column, value in zip(F.CARD_FILL_COLUMNS, known, strict=True):
                    if row[column] is None:
                        row[column] = value
        metadata = row["metadata"]
        found = _ORDER_ID.search(metadata) if isinstance(metadata, str) else None
        row["_order_id"] = found.group(1) if found else None
        country = row["customer_country"] or row["card_country"]
        hours = F.UTC_OFFSET_HOURS.get(country, 0) if country is not None else 0
        row["_clock"] = row["provider_created_at"].astimezone(UTC) + timedelta(hours=hours)
        return row


def with_retry_delay(feats: Features, delay_hours: float) -> Features:
    """``feats`` with the delay features of retrying ``delay_hours`` later."""
    return feats | delay_features(feats["_clock"], delay_hours)  # type: ignore[arg-type]


def delay_features(now: datetime, delay_hours: float) -> dict[str, float]:
    """The delay features of retrying ``delay_hours`` after the local clock ``now`` (mirrors
    ``ml.features.with_retry_delay``)."""
    then = now + timedelta(seconds=delay_hours * 3600)
    months = then.year * 12 + then.month - (now.year * 12 + now.month)
    mid = months + (then.day >= 15) - (now.day >= 15)
    day0, day1 = _epoch_day(now), _epoch_day(then)
    fridays = (day1 - 1) // 7 - (day0 - 1) // 7  # 1970-01-02 was a Friday
    return {
        "delay_hours": float(delay_hours),
        "retry_local_hour": float(then.hour + then.minute / 60),
        "retry_day_of_week": float(then.isoweekday()),
        "retry_day_of_month": float(then.day),
        "retry_crosses_month_start": float(months > 0),
        "retry_crosses_mid_month": float(mid > 0),
        "retry_crosses_friday": float(fridays > 0),
    }


def design_row(feats: Features, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """One model input row: ``names`` in order as float64 (null -> NaN), ``F.design_matrix``."""
    return np.array([[np.nan if feats.get(n) is None else float(feats[n]) for n in names]])


def _epoch_day(moment: datetime) -> int:
    """Days since 1970-01-01 (floored), as Polars' ``dt.epoch("d")``."""
    return (moment - _EPOCH).days


def _own(row: Mapping[str, object]) -> Features:
    """``ml.features._own_features`` for one row."""
    clock: datetime = row["_clock"]  # type: ignore[assignment]
    card, home = row["card_country"], row["customer_country"]
    event_type = row["event_type"]
    own: Features = {
        "_clock": clock,
        "local_hour": float(clock.hour + clock.minute / 60),
        "day_of_week": float(clock.isoweekday()),
        "day_of_month": float(clock.day),
        "is_foreign_card": None if card is None or home is None else float(card != home),
        "is_failed_event": None if event_type is None else float(event_type == F.FAILED),
    }
    for name, (column, vocabulary) in _CODES.items():
        value = row[column]
        own[name] = None if value is None else float(_position(vocabulary, value))
    return own


def _position(vocabulary: tuple[str, ...], value: object) -> int:
    """Index in a fixed vocabulary; unknown values share the last code (``F._code``)."""
    try:
        return vocabulary.index(value)  # type: ignore[arg-type]
    except ValueError:
        return len(vocabulary)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or not den > 0:
        return None
    return num / den


def _derived(row: Mapping[str, object], w: Mapping[str, float]) -> Features:
    """``ml.features._derived`` for one row."""
    amount = row["amount"]
    amount = None if amount is None else float(amount)  # type: ignore[arg-type]
    mean_30d = _ratio(w["_cc_amount_30d"], w["_cc_success_30d"])
    currency_30d = _ratio(w["_cur_amount_30d"], w["_cur_success_30d"])
    log_amount = None
    if amount is not None and amount > 0 and currency_30d is not None:
        log_amount = math.log(amount / currency_30d) if currency_30d else math.inf
    known_card = row["card_last_four"] is not None
    return {
        "log_amount_vs_currency": log_amount,
        "c_mean_amount_vs_currency_30d": _ratio(mean_30d, currency_30d),
        "amount_vs_mean_30d": _ratio(amount, mean_30d),
        "amount_trend": _ratio(_ratio(w["_cc_amount_7d"], w["_cc_success_7d"]), mean_30d),
        "c_success_trend": _ratio(w["c_success_7d"] * (30 / 7), w["c_success_30d"]),
        "c_fail_rate_30d": _ratio(w["c_fail_30d"], w["c_attempts_30d"]),
        "c_night_share_30d": _ratio(w["_c_night_30d"], w["c_attempts_30d"]),
        "c_foreign_share_30d": _ratio(w["_c_foreign_30d"], w["c_attempts_30d"]),
        "card_is_new": float(w["card_attempts_30d"] == 0) if known_card else None,
        "m_fail_rate_7d": _ratio(w["_m_fail_7d"], w["m_attempts_7d"]),
        "m_fraud_dispute_rate_30d": _ratio(w["_m_fraud_30d"], w["_m_success_30d"]),
        "m_dispute_rate_30d": _ratio(w["_m_disputes_30d"], w["_m_success_30d"]),
        "amount_vs_merchant_mean": _ratio(
            amount, _ratio(w["_mc_amount_30d"], w["_mc_success_30d"])
        ),
    }
