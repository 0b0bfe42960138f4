"""Quarantine rows: the one way a bronze delivery becomes a ``silver.quarantine`` row.

Grain: one row per rejected delivery and layer (``quarantine_id`` = ``layer:delivery_id``). The
row keeps what is needed to replay it from bronze (payload and source coordinates), the code and
the detail of the rejection, and no release yet. Two callers: the row rules of
``transforms.events`` (one code per row), and an operator's decision to quarantine a batch a gate
holds (``gate_rejected``: code ``GATE_REJECTED`` for every delivery of the batch's events).
Replay selects rows still ``pending`` and marks those that now pass as ``released``; a backfill
(``rebuilt``) does both for every delivery of its days at once.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from settings.names import GATE_REJECTED
from transforms.schemas import SILVER_QUARANTINE, TS, conform

LAYER = "silver"


def quarantine_rows(
    deliveries: pl.DataFrame,
    *,
    code: pl.Expr,
    detail: pl.Expr,
    event_id: pl.Expr,
    event_type: pl.Expr,
    quarantined_at: datetime,
    layer: str = LAYER,
) -> pl.DataFrame:
    """``silver.quarantine`` rows for bronze ``deliveries``: one per row, in the same order,
    with the given ``code``, ``detail`` and event id and type (expressions over the rows)."""
    frame = deliveries.with_columns(
        (pl.lit(f"{layer}:") + pl.col("delivery_id")).alias("quarantine_id"),
        pl.lit(layer).alias("layer"),
        code.alias("error_code"),
        detail.alias("error_detail"),
        event_id.alias("event_id"),
        event_type.alias("event_type"),
        pl.lit(quarantined_at).cast(TS).alias("quarantined_at"),
        pl.lit(None, dtype=TS).alias("released_at"),
        pl.lit(None, dtype=pl.String).alias("released_by"),
    )
    return conform(frame, SILVER_QUARANTINE)


def gate_rejected(
    bronze: pl.DataFrame, rejected: pl.DataFrame, quarantined_at: datetime
) -> pl.DataFrame:
    """Quarantine rows (code ``GATE_REJECTED``) for the bronze deliveries of a held batch an
    operator rejected: ``rejected`` holds their ``delivery_id`` and ``error_detail`` (the failed
    expectation, who decided and why); one row per delivery, first occurrence kept."""
    rows = bronze.unique("delivery_id", keep="first", maintain_order=True).join(
        rejected.select("delivery_id", pl.col("error_detail").alias("_gate_detail")),
        on="delivery_id",
        how="inner",
        maintain_order="left",
    )
    return quarantine_rows(
        rows,
        code=pl.lit(GATE_REJECTED),
        detail=pl.col("_gate_detail"),
        event_id=pl.col("event_id"),
        event_type=pl.col("event_type"),
        quarantined_at=quarantined_at,
    )


def pending(
    quarantine: pl.DataFrame, codes: list[str] | None, ids: list[str] | None
) -> pl.DataFrame:
    """The rows not yet released that an operator selected: by error code, or by quarantine or
    delivery id (either selects; at least one must be given)."""
    if not codes and not ids:
        raise ValueError("say which rows to release: --code and/or --id")
    unreleased = quarantine.filter(pl.col("released_at").is_null())
    wanted = pl.lit(False)
    if codes:
        wanted = wanted | pl.col("error_code").is_in(codes)
    if ids:
        wanted = wanted | pl.col("quarantine_id").is_in(ids) | pl.col("delivery_id").is_in(ids)
    return unreleased.filter(wanted)


def released(
    selected: pl.DataFrame, delivery_ids: pl.Series, note: str, released_at: datetime
) -> pl.DataFrame:
    """The ``selected`` rows whose delivery now passes (``delivery_ids``), marked released at
    ``released_at`` with ``note`` (who, and why)."""
    return selected.filter(pl.col("delivery_id").is_in(delivery_ids.implode())).with_columns(
        released_at=pl.lit(released_at), released_by=pl.lit(note)
    )


def operator_rejected(recorded: pl.DataFrame) -> pl.Series:
    """Delivery ids an operator's decision quarantined (``GATE_REJECTED``, not released): they
    stay out of silver until a replay of that code releases them."""
    decided = recorded.filter(
        (pl.col("error_code") == GATE_REJECTED) & pl.col("released_at").is_null()
    )
    return decided["delivery_id"]


def rebuilt(
    recorded: pl.DataFrame,
    rejected: pl.DataFrame,
    deliveries: pl.Series,
    note: str,
    at: datetime,
) -> pl.DataFrame:
    """The quarantine rows a rebuild of ``deliveries`` writes (replacing rows by
    ``quarantine_id``), given the rows ``recorded`` for them and the rows the rules
    ``rejected`` now: rows that now fail and are not pending yet (new, or released before), and
    pending rows whose delivery now passes, marked released with ``note``. Operators'
    ``GATE_REJECTED`` rows are left as they are."""
    pending_ids = recorded.filter(pl.col("released_at").is_null())["quarantine_id"]
    newly_failing = rejected.filter(~pl.col("quarantine_id").is_in(pending_ids.implode()))
    passing = deliveries.filter(~deliveries.is_in(rejected["delivery_id"].implode()))
    candidates = recorded.filter(pl.col("error_code") != GATE_REJECTED)
    now_passing = released(candidates.filter(pl.col("released_at").is_null()), passing, note, at)
    return pl.concat([newly_failing, conform(now_passing, SILVER_QUARANTINE)])
