"""Row-level rejection rules of silver as vectorized Polars expressions (first match wins).

Each rule is ``(condition, code, detail)``; ``first_match`` folds them into two expressions, the
code of the first rule that holds (null when none does) and its detail. Everything that can be
said of one row is a rule here (or in the row contract): a row that breaks one is quarantined
with its code and the rest of the batch goes on. ``RowLimits`` holds the thresholds that come
from settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

from settings.names import (
    INVALID_AMOUNT,
    INVALID_AMOUNT_NEGATIVE,
    INVALID_AMOUNT_TOO_LARGE,
    INVALID_CURRENCY,
    INVALID_EVENT_TIME,
    INVALID_FIELD_TYPE,
    MISSING_DATA_OBJECT,
    MISSING_EVENT_ID,
    MISSING_EVENT_TYPE,
    MISSING_OBJECT_ID,
)
from transforms import money
from transforms.normalize import obj

Rule = tuple[pl.Expr, str | pl.Expr, str | pl.Expr]

INTEGER_LITERAL = r"^-?[0-9]+$"


@dataclass(frozen=True)
class RowLimits:
    """Thresholds of the row rules (from settings): amount limits overriding the provider's per
    currency, and the window of event time around receipt (``received_at``)."""

    amount_limits_minor: Mapping[str, int] = field(default_factory=dict)
    event_max_age: timedelta = timedelta(days=400)
    event_max_future: timedelta = timedelta(minutes=5)


def _lit(value: str | pl.Expr) -> pl.Expr:
    return pl.lit(value) if isinstance(value, str) else value


def first_match(rules: list[Rule]) -> tuple[pl.Expr, pl.Expr]:
    """``(code, detail)`` of the first rule whose condition holds; nulls when none holds."""
    code, detail = pl.lit(None, dtype=pl.String), pl.lit(None, dtype=pl.String)
    for condition, rule_code, rule_detail in reversed(rules):
        hit = condition.fill_null(False)
        code = pl.when(hit).then(_lit(rule_code)).otherwise(code)
        detail = pl.when(hit).then(_lit(rule_detail)).otherwise(detail)
    return code, detail


def _envelope_rules() -> list[Rule]:
    dlq, u_code = pl.col("dlq_reason"), pl.col("_u_code")
    return [
        (dlq.is_not_null(), dlq, pl.format("routed to webhooks.dlq by the receiver: {}", dlq)),
        (u_code == "INVALID_JSON", u_code, pl.col("_u_detail")),
        (pl.col("_provider_event_id").is_null(), MISSING_EVENT_ID, "the event has no id"),
        (pl.col("_provider_event_type").is_null(), MISSING_EVENT_TYPE, "the event has no type"),
    ]


def _object_rules() -> list[Rule]:
    event = pl.col("_event")
    data_object = event.struct.field("data").struct.field("object")
    undecodable = event.is_null() & pl.col("_u_code").is_not_null()
    livemode = pl.col("_livemode_text")
    return [
        (undecodable, pl.col("_u_code"), pl.col("_u_detail")),
        (data_object.is_null(), MISSING_DATA_OBJECT, "the event has no data.object"),
        (obj("id").is_null(), MISSING_OBJECT_ID, "data.object has no id"),
        (
            livemode.is_not_null() & ~livemode.is_in(["true", "false"]),
            INVALID_FIELD_TYPE,
            pl.format("livemode {} is not a boolean", livemode),
        ),
    ]


def _amount_rules(name: pl.Expr, text: pl.Expr, is_string: pl.Expr, limit: pl.Expr) -> list[Rule]:
    """The rules of one amount field: its ``name`` (for details), its JSON ``text``, whether it
    was a JSON string, and the limit in minor units."""
    minor = text.cast(pl.Int64, strict=False)
    negative = (minor < 0) | (minor.is_null() & text.str.starts_with("-"))
    where = pl.format("data.object.{}", name)
    return [
        (text.is_null(), INVALID_AMOUNT, pl.format("{} is missing", where)),
        (
            is_string,
            INVALID_AMOUNT,
            pl.format('{} is the string "{}", not an integer', where, text),
        ),
        (
            ~text.str.contains(INTEGER_LITERAL),
            INVALID_AMOUNT,
            pl.format("{} {} is not an integer", where, text),
        ),
        (negative, INVALID_AMOUNT_NEGATIVE, pl.format("{} {} < 0", where, text)),
        (
            minor.is_null(),
            INVALID_AMOUNT_TOO_LARGE,
            pl.format("{} {} overflows int64", where, text),
        ),
        (
            limit.is_not_null() & (minor > limit),
            INVALID_AMOUNT_TOO_LARGE,
            pl.format(
                "{} {} {} minor units is over the limit of {}",
                where,
                text,
                pl.col("_currency"),
                limit,
            ),
        ),
    ]


def _money_rules(limits: RowLimits) -> list[Rule]:
    """The object's ``amount``, then the field holding the money moved when it is another one
    (``amount_received``, ``amount_captured``, ``amount_refunded``), then the currency."""
    provider, currency = pl.col("provider"), pl.col("_currency")
    limit = money.limit_minor(provider, currency, limits.amount_limits_minor)
    moved = pl.col("_money_field")
    moved_rules = [
        (moved.ne("amount") & pl.col("_moved_text").is_not_null() & condition, code, detail)
        for condition, code, detail in _amount_rules(
            moved, pl.col("_moved_text"), pl.col("_moved_is_string"), limit
        )
    ]
    return [
        *_amount_rules(
            pl.lit("amount"), pl.col("_amount_text"), pl.col("_amount_is_string"), limit
        ),
        *moved_rules,
        (
            pl.col("_exponent").is_null(),
            INVALID_CURRENCY,
            money.unsupported_reason(provider, currency),
        ),
    ]


def _time_rules(limits: RowLimits) -> list[Rule]:
    """Event time (``created``) within ``[received_at - max_age, received_at + max_future]``."""
    created, received = pl.col("_created_at"), pl.col("received_at")
    oldest, latest = received - limits.event_max_age, received + limits.event_max_future
    return [
        (created.is_null(), INVALID_EVENT_TIME, "created is missing or not unix seconds"),
        (
            created < oldest,
            INVALID_EVENT_TIME,
            pl.format(
                "created {} is more than {} days before received_at {}",
                created,
                pl.lit(limits.event_max_age.days),
                received,
            ),
        ),
        (
            created > latest,
            INVALID_EVENT_TIME,
            pl.format(
                "created {} is more than {} s after received_at {}",
                created,
                pl.lit(int(limits.event_max_future.total_seconds())),
                received,
            ),
        ),
    ]


def rejection_rules(limits: RowLimits) -> list[Rule]:
    """All silver rules in order. Rows of types that are not modelled (``_modelled`` false)
    only face the envelope rules: they stay in bronze, counted, not quarantined."""
    modelled = pl.col("_modelled")
    gated = [
        (modelled & condition, code, detail)
        for condition, code, detail in (
            *_object_rules(),
            *_money_rules(limits),
            *_time_rules(limits),
        )
    ]
    return [*_envelope_rules(), *gated]
