"""Bronze deliveries -> silver: unified payment events, quarantine rows, not-modelled rows.

Grain in: one row per delivery (``bronze.webhook_events``). Grain out: ``events`` one row per
provider event id (first delivery wins within the batch), ``quarantine`` one row per rejected
delivery, ``not_modelled`` the bronze rows of event types silver does not model. Every bronze row
lands in exactly one of the three or is counted as an in-batch duplicate.

Rejection codes come from vectorized Polars rules, first match wins, in this order: the DLQ
reason of a ``webhooks.dlq`` delivery; ``INVALID_JSON``, ``MISSING_EVENT_ID``,
``MISSING_EVENT_TYPE``; (types not modelled stop here); ``MISSING_DATA_OBJECT``,
``MISSING_OBJECT_ID``, ``INVALID_FIELD_TYPE`` (a nested field of the wrong JSON type, a
``livemode`` that is no boolean), ``INVALID_AMOUNT``, ``INVALID_AMOUNT_NEGATIVE``,
``INVALID_AMOUNT_TOO_LARGE`` (the object's ``amount``, then the field holding the money moved),
``INVALID_CURRENCY``, ``INVALID_EVENT_TIME`` (see ``transforms.rules``). Rows that pass them are
then held to the row contract given as ``row_contract`` (``quality.contracts.check_rows``); its
rejections get ``ROW_CONTRACT``.

Money: ``amount_minor`` is what the event moved (``transforms.normalize.MONEY_FIELDS``),
``object_amount_minor`` the object's own ``amount``, ``amount`` the former in major units by the
provider's rules (``transforms.money``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from settings.names import ROW_CONTRACT
from transforms import money, payload
from transforms.normalize import (
    EVENT_TYPES,
    MONEY_FIELDS,
    clean,
    field,
    livemode,
    money_field,
    moved_text,
    obj,
    object_kind,
    unified_fields,
)
from transforms.normalize import provider_created_at as created_at
from transforms.quarantine import quarantine_rows
from transforms.rules import RowLimits, first_match, rejection_rules
from transforms.schemas import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS, TS, conform

#: Delivery order: the first delivery of an event id by this order wins.
DELIVERY_ORDER = ("received_at", "topic", "partition", "offset")
SCHEMA_VERSION = 2

#: ``(events) -> violations``: a frame of ``delivery_id`` and ``error_detail`` for the rows of
#: ``events`` that break the row contract (``quality.contracts.check_rows``).
RowContract = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class SilverSplit:
    """The outcome of one bronze batch: what silver appends, quarantines and only counts."""

    events: pl.DataFrame  # silver.payment_events columns
    quarantine: pl.DataFrame  # silver.quarantine columns
    not_modelled: pl.DataFrame  # bronze.webhook_events columns
    duplicates_in_batch: int

    @property
    def counts(self) -> dict[str, int]:
        """Row counts per outcome; ``bronze`` is their sum (every delivery is accounted for)."""
        parts = {
            "events": self.events.height,
            "quarantine": self.quarantine.height,
            "not_modelled": self.not_modelled.height,
            "duplicates_in_batch": self.duplicates_in_batch,
        }
        return {"bronze": sum(parts.values()), **parts}

    def quarantine_by_code(self) -> dict[str, int]:
        """Quarantined deliveries per error code."""
        counts = self.quarantine.group_by("error_code").len().sort("error_code")
        return dict(counts.iter_rows())


def to_silver(
    bronze: pl.DataFrame | pl.LazyFrame,
    *,
    processed_at: datetime,
    limits: RowLimits | None = None,
    row_contract: RowContract | None = None,
) -> SilverSplit:
    """Split a bronze batch into unified events, quarantine rows and not-modelled rows.

    ``processed_at`` (timezone-aware) stamps ``processed_at`` and ``quarantined_at``; ``limits``
    are the row rules' thresholds (amount limits per currency, event-time window);
    ``row_contract`` (see ``RowContract``) is the last gate before ``events``. Pure: no I/O,
    same input gives the same output."""
    if processed_at.tzinfo is None:
        raise ValueError("processed_at must be timezone-aware")
    if isinstance(bronze, pl.LazyFrame):
        bronze = bronze.collect()
    rows = _classified(bronze.select(BRONZE_WEBHOOK_EVENTS.column_names), limits or RowLimits())
    rejected = rows.filter(pl.col("_code").is_not_null())
    not_modelled = rows.filter(pl.col("_code").is_null() & ~pl.col("_modelled"))
    valid = rows.filter(pl.col("_code").is_null() & pl.col("_modelled"))
    first = _first_deliveries(valid)
    events = _events(first, processed_at)
    if row_contract is not None and events.height:
        events, broken = _apply_contract(events, first, row_contract)
        rejected = pl.concat([rejected, broken], how="diagonal_relaxed")
    return SilverSplit(
        events=events,
        quarantine=_quarantine(rejected.sort(DELIVERY_ORDER), processed_at),
        not_modelled=conform(not_modelled, BRONZE_WEBHOOK_EVENTS),
        duplicates_in_batch=valid.height - first.height,
    )


def drop_seen(events: pl.DataFrame, seen_event_ids: pl.Series) -> tuple[pl.DataFrame, int]:
    """Drop events whose ``event_id`` is already in silver; return the rest and how many went.

    Grain unchanged (one row per event id); order of ``events`` kept."""
    seen = pl.DataFrame({"event_id": seen_event_ids.cast(pl.String).unique()})
    kept = events.join(seen, on="event_id", how="anti", maintain_order="left")
    return kept, events.height - kept.height


def _first_deliveries(valid: pl.DataFrame) -> pl.DataFrame:
    """One row per event id: its first delivery by ``DELIVERY_ORDER`` (batch order kept; only
    the narrow key columns are sorted)."""
    keys = valid.select("_row", "_event_id", *DELIVERY_ORDER).sort(DELIVERY_ORDER)
    winners = keys.unique("_event_id", keep="first")["_row"]
    return valid.filter(pl.col("_row").is_in(winners.implode()))


def _classified(bronze: pl.DataFrame, limits: RowLimits) -> pl.DataFrame:
    """Bronze rows with the decoded event and ``_code``/``_detail``/``_modelled``."""
    routable = bronze["payload"].set(bronze["dlq_reason"].is_not_null(), None)  # DLQ: by reason
    rows = bronze.with_row_index("_row").with_columns(
        payload.decode_events(routable, bronze["event_id"]).alias("_event")
    )
    rows = _with_undecodable(rows)
    provider_type = pl.coalesce(field("type"), clean(pl.col("_u_type")))
    rows = rows.with_columns(
        pl.coalesce(field("id"), clean(pl.col("_u_id"))).alias("_provider_event_id"),
        provider_type.alias("_provider_event_type"),
        money_field(provider_type).alias("_money_field"),
        obj("amount").alias("_amount_text"),
        moved_text(provider_type).alias("_moved_text"),
        obj("currency").str.to_uppercase().alias("_currency"),
        field("livemode").alias("_livemode_text"),
        created_at().alias("_created_at"),
    ).with_columns(
        pl.col("_provider_event_type").is_in(list(EVENT_TYPES)).alias("_modelled"),
        pl.col("_amount_text").cast(pl.Int64, strict=False).alias("_amount_minor"),
        pl.coalesce("_moved_text", "_amount_text").cast(pl.Int64, strict=False).alias("_moved"),
        money.exponent(pl.col("provider"), pl.col("_currency")).alias("_exponent"),
        (pl.col("provider") + ":" + pl.col("_provider_event_id")).alias("_event_id"),
    )
    rows = _with_string_amounts(rows)
    code, detail = first_match(rejection_rules(limits))
    return rows.with_columns(code.alias("_code"), detail.alias("_detail"))


def _with_undecodable(rows: pl.DataFrame) -> pl.DataFrame:
    broken = rows.filter(pl.col("_event").is_null() & pl.col("dlq_reason").is_null())
    if broken.height:
        found = broken.select("_row", *payload.classify_undecodable(pl.col("payload")))
        return rows.join(found, on="_row", how="left", maintain_order="left")
    none = pl.lit(None, dtype=pl.String)
    return rows.with_columns(*(none.alias(c) for c in ("_u_id", "_u_type", "_u_code", "_u_detail")))


def _with_string_amounts(rows: pl.DataFrame) -> pl.DataFrame:
    """``_amount_is_string`` and ``_moved_is_string`` (the money-moved field): exact, but parsed
    again only where the text suggests a string amount."""
    suspects = rows.filter(
        pl.col("_event").is_not_null() & pl.col("payload").str.contains(payload.AMOUNT_AS_STRING)
    )
    flags = ("_amount_is_string", "_moved_is_string")
    if not suspects.height:
        return rows.with_columns(*(pl.lit(False).alias(f) for f in flags))
    text = pl.col("payload")
    moved_is_number = pl.lit(True)
    for name in sorted(set(MONEY_FIELDS.values())):
        is_field = pl.col("_money_field") == name
        is_number = payload.amount_is_number(text, name)
        moved_is_number = pl.when(is_field).then(is_number).otherwise(moved_is_number)
    found = suspects.select(
        "_row",
        (~payload.amount_is_number(text)).alias(flags[0]),
        (~moved_is_number).alias(flags[1]),
    )
    rows = rows.join(found, on="_row", how="left", maintain_order="left")
    return rows.with_columns(pl.col(f).fill_null(False) for f in flags)


def _events(first: pl.DataFrame, processed_at: datetime) -> pl.DataFrame:
    """Unified events (``silver.payment_events`` columns) from classified valid rows."""
    frame = first.with_columns(object_kind().alias("_kind")).with_columns(
        pl.col("_event_id").alias("event_id"),
        pl.col("_provider_event_id").alias("provider_event_id"),
        pl.col("_provider_event_type").replace_strict(EVENT_TYPES).alias("event_type"),
        pl.col("_provider_event_type").alias("provider_event_type"),
        *unified_fields(),
        pl.col("_moved").alias("amount_minor"),
        pl.col("_amount_minor").alias("object_amount_minor"),
        pl.col("_currency").alias("currency"),
        money.to_major(pl.col("_moved"), pl.col("_exponent")).alias("amount"),
        livemode(pl.col("_livemode_text")).alias("livemode"),
        field("api_version").alias("api_version"),
        pl.col("_created_at").alias("provider_created_at"),
        pl.lit(processed_at).cast(TS).alias("processed_at"),
        pl.lit(SCHEMA_VERSION, dtype=pl.Int32).alias("schema_version"),
    )
    return conform(_with_metadata(frame), SILVER_PAYMENT_EVENTS)


def _with_metadata(frame: pl.DataFrame) -> pl.DataFrame:
    """``metadata`` JSON text: by regex where exact, else parsed again (few rows)."""
    has = pl.col("_event").struct.field("data").struct.field("object").struct.field("metadata")
    frame = frame.with_columns(
        payload.quick_metadata_text(pl.col("payload"), has.is_not_null()).alias("metadata"),
        has.is_not_null().alias("_has_metadata"),
    )
    slow = frame.filter(pl.col("_has_metadata") & pl.col("metadata").is_null())
    if not slow.height:
        return frame
    parsed = slow.select("_row", payload.metadata_text(pl.col("payload")).alias("_metadata"))
    frame = frame.join(parsed, on="_row", how="left", maintain_order="left")
    return frame.with_columns(pl.coalesce("metadata", "_metadata").alias("metadata"))


def _apply_contract(
    events: pl.DataFrame, first: pl.DataFrame, row_contract: RowContract
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Move the events the row contract rejects to quarantine (as classified bronze rows)."""
    violations = row_contract(events).select("delivery_id", "error_detail")
    if not violations.height:
        return events, first.clear()
    kept = events.join(violations, on="delivery_id", how="anti", maintain_order="left")
    broken = first.join(violations, on="delivery_id", how="inner", maintain_order="left")
    broken = broken.with_columns(
        pl.lit(ROW_CONTRACT).alias("_code"), pl.col("error_detail").alias("_detail")
    ).drop("error_detail")
    return kept, broken


def _quarantine(rejected: pl.DataFrame, processed_at: datetime) -> pl.DataFrame:
    """``silver.quarantine`` rows for rejected classified bronze rows."""
    return quarantine_rows(
        rejected,
        code=pl.col("_code"),
        detail=pl.col("_detail"),
        event_id=pl.coalesce("_provider_event_id", clean(pl.col("event_id"))),
        event_type=pl.coalesce("_provider_event_type", clean(pl.col("event_type"))),
        quarantined_at=processed_at,
    )
