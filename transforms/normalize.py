"""Expressions from a decoded Stripe event (``EVENT`` struct in column ``_event``) to the fields
of the unified payment event: event type mapping, the money each event moved, null strings, ids,
card, failure details, livemode.
"""

from __future__ import annotations

import polars as pl

from transforms.schemas import TS

#: Stripe event type -> unified event type. Types not listed are kept in bronze, not modelled.
EVENT_TYPES: dict[str, str] = {
    "payment_intent.created": "payment.created",
    "payment_intent.processing": "payment.processing",
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.payment_failed": "payment.failed",
    "payment_intent.canceled": "payment.canceled",
    **{f"charge.{s}": f"charge.{s}" for s in ("succeeded", "failed", "captured", "pending")},
    **{f"charge.{s}": f"charge.{s}" for s in ("refunded", "updated")},
    "refund.created": "refund.created",
    "refund.updated": "refund.updated",
    "refund.failed": "refund.failed",
    "charge.refund.updated": "refund.updated",
    **{
        f"charge.dispute.{s}": f"dispute.{s}"
        for s in ("created", "updated", "closed", "funds_withdrawn", "funds_reinstated")
    },
}
#: The ``data.object`` field holding the money an event moved, where it is not ``amount``: a
#: succeeded PaymentIntent received ``amount_received``; a capture took ``amount_captured`` (a
#: partial capture takes less than the charge's amount); ``charge.refunded`` carries the charge,
#: whose ``amount_refunded`` is what was refunded. Refund objects (``refund.*``,
#: ``charge.refund.updated``) and disputes (``charge.dispute.*``) hold the refunded and disputed
#: amount in ``amount``. Payloads without the field (older API versions) fall back to ``amount``.
MONEY_FIELDS: dict[str, str] = {
    "payment_intent.succeeded": "amount_received",
    "charge.captured": "amount_captured",
    "charge.refunded": "amount_refunded",
}

#: The normalized event types silver can hold.
UNIFIED_TYPES: tuple[str, ...] = tuple(sorted(set(EVENT_TYPES.values())))

#: Strings that mean "no value" wherever they appear in a payload field.
NULL_STRINGS: tuple[str, ...] = ("null", "NULL", "None", "")

_OBJECT_PREFIXES = (
    ("pi_", "payment_intent"),
    ("ch_", "charge"),
    ("py_", "charge"),
    ("re_", "refund"),
    ("pyr_", "refund"),
    ("dp_", "dispute"),
    ("du_", "dispute"),
)


def clean(text: pl.Expr) -> pl.Expr:
    """Null for the null strings ("null", "NULL", "None", "")."""
    return pl.when(text.is_in(NULL_STRINGS)).then(None).otherwise(text)


def field(*path: str) -> pl.Expr:
    """A cleaned string field of the decoded event, by path (``field("data", "object", "id")``)."""
    expr = pl.col("_event")
    for name in path:
        expr = expr.struct.field(name)
    return clean(expr)


def obj(*path: str) -> pl.Expr:
    """A cleaned string field of ``data.object``."""
    return field("data", "object", *path)


def money_field(event_type: pl.Expr) -> pl.Expr:
    """Name of the field holding the money moved by an event of this (provider) type."""
    return event_type.replace_strict(MONEY_FIELDS, default="amount", return_dtype=pl.String)


def moved_text(event_type: pl.Expr) -> pl.Expr:
    """JSON text of the money-moved field when it is not ``amount`` (null otherwise, or when the
    payload lacks it)."""
    text = pl.lit(None, dtype=pl.String)
    for provider_type, name in MONEY_FIELDS.items():
        text = pl.when(event_type == provider_type).then(obj(name)).otherwise(text)
    return text


def livemode(text: pl.Expr) -> pl.Expr:
    """The envelope's ``livemode`` text (``true``/``false``) as a boolean; null when absent."""
    return text.replace_strict(
        {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
    )


def _card(name: str) -> pl.Expr:
    return pl.coalesce(
        obj("payment_method_details", "card", name),
        obj("last_payment_error", "payment_method", "card", name),
    )


def object_kind() -> pl.Expr:
    """``payment_intent``, ``charge``, ``refund`` or ``dispute``: ``data.object.object``, else
    read from the id prefix."""
    object_id = obj("id")
    by_prefix = pl.lit(None, dtype=pl.String)
    for prefix, kind in reversed(_OBJECT_PREFIXES):
        starts = object_id.str.starts_with(prefix)
        by_prefix = pl.when(starts).then(pl.lit(kind)).otherwise(by_prefix)
    return pl.coalesce(obj("object"), by_prefix)


def unified_fields() -> list[pl.Expr]:
    """The unified event's payload-derived fields (needs ``_event``, ``_kind``)."""
    kind = pl.col("_kind")
    object_id = obj("id")
    outcome_reason = pl.when(obj("outcome", "type") == "issuer_declined").then(
        obj("outcome", "reason")
    )
    methods = pl.col("_event").struct.field("data").struct.field("object")
    first_method = clean(methods.struct.field("payment_method_types").list.first())
    return [
        object_id.alias("object_id"),
        pl.when(kind == "payment_intent")
        .then(object_id)
        .otherwise(obj("payment_intent"))
        .alias("payment_intent_id"),
        pl.when(kind == "charge")
        .then(object_id)
        .otherwise(pl.coalesce(obj("latest_charge"), obj("charge")))
        .alias("charge_id"),
        pl.coalesce(field("account"), obj("metadata", "merchant_id")).alias("merchant_id"),
        obj("customer").alias("customer_id"),
        pl.coalesce(obj("payment_method_details", "type"), first_method).alias(
            "payment_method_type"
        ),
        _card("brand").alias("card_brand"),
        _card("last4").alias("card_last_four"),
        _card("country").alias("card_country"),
        pl.coalesce(
            obj("billing_details", "address", "country"),
            obj("last_payment_error", "payment_method", "billing_details", "address", "country"),
        ).alias("customer_country"),
        obj("status").alias("status"),
        pl.coalesce(obj("failure_code"), obj("last_payment_error", "code")).alias("failure_code"),
        pl.coalesce(obj("last_payment_error", "decline_code"), outcome_reason).alias(
            "decline_code"
        ),
        pl.coalesce(obj("failure_message"), obj("last_payment_error", "message")).alias(
            "failure_message"
        ),
        pl.when(kind == "dispute").then(obj("reason")).alias("dispute_reason"),
    ]


def provider_created_at() -> pl.Expr:
    """``created`` (unix seconds) as a UTC timestamp; null when absent or not an integer."""
    seconds = field("created").cast(pl.Int64, strict=False)
    return pl.from_epoch(seconds, time_unit="s").dt.replace_time_zone("UTC").cast(TS)
