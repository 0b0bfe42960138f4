"""Row-level rejection rules of silver as vectorized Polars expressions (first match wins).

Each rule is ``(condition, code, detail)``; ``first_match`` folds them into two expressions, the
code of the first rule that holds (null when none does) and its detail.
"""

from __future__ import annotations

import polars as pl

from transforms import currency
from transforms.normalize import obj

Rule = tuple[pl.Expr, str | pl.Expr, str | pl.Expr]

INTEGER_LITERAL = r"^-?[0-9]+$"


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
        (pl.col("_provider_event_id").is_null(), "MISSING_EVENT_ID", "the event has no id"),
        (pl.col("_provider_event_type").is_null(), "MISSING_EVENT_TYPE", "the event has no type"),
    ]


def _object_rules() -> list[Rule]:
    event = pl.col("_event")
    data_object = event.struct.field("data").struct.field("object")
    undecodable = event.is_null() & pl.col("_u_code").is_not_null()
    return [
        (undecodable, pl.col("_u_code"), pl.col("_u_detail")),
        (data_object.is_null(), "MISSING_DATA_OBJECT", "the event has no data.object"),
        (obj("id").is_null(), "MISSING_OBJECT_ID", "data.object has no id"),
    ]


def _amount_rules(amount_max_major: int) -> list[Rule]:
    text, minor, exp = pl.col("_amount_text"), pl.col("_amount_minor"), pl.col("_exponent")
    limit = pl.lit(amount_max_major, dtype=pl.Int64) * pl.lit(10, dtype=pl.Int64).pow(exp)
    negative = (minor < 0) | (minor.is_null() & text.str.starts_with("-"))
    return [
        (text.is_null(), "INVALID_AMOUNT", "data.object.amount is missing"),
        (
            pl.col("_amount_is_string"),
            "INVALID_AMOUNT",
            pl.format('data.object.amount is the string "{}", not an integer', text),
        ),
        (
            ~text.str.contains(INTEGER_LITERAL),
            "INVALID_AMOUNT",
            pl.format("data.object.amount {} is not an integer", text),
        ),
        (negative, "INVALID_AMOUNT_NEGATIVE", pl.format("data.object.amount {} < 0", text)),
        (minor.is_null(), "INVALID_AMOUNT_TOO_LARGE", pl.format("{} overflows int64", text)),
        (
            exp.is_not_null() & (minor > limit),
            "INVALID_AMOUNT_TOO_LARGE",
            pl.format(
                "{} {} minor units is over {} major units",
                text,
                pl.col("_currency"),
                pl.lit(amount_max_major),
            ),
        ),
    ]


def rejection_rules(amount_max_major: int) -> list[Rule]:
    """All silver rules in order. Rows of types that are not modelled (``_modelled`` false)
    only face the envelope rules: they stay in bronze, counted, not quarantined."""
    modelled = pl.col("_modelled")
    gated = [
        (modelled & condition, code, detail)
        for condition, code, detail in (
            *_object_rules(),
            *_amount_rules(amount_max_major),
            (
                pl.col("_exponent").is_null(),
                "INVALID_CURRENCY",
                currency.unsupported_reason(pl.col("_currency")),
            ),
        )
    ]
    return [*_envelope_rules(), *gated]
