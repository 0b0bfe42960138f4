"""Vectorized parsing of raw Stripe webhook bodies (JSON text) into the fields silver needs.

One ``str.json_decode`` pass with an explicit struct type does the work: scalar leaves are
decoded as strings (JSON numbers and booleans become their text; nothing is guessed), so the
only payloads that can make Polars raise are the broken ones — not JSON, not an object, or an
object/array where a scalar is expected (and the reverse). Those never stop a batch: a chunk that
fails is retried without the rows that are not JSON objects, then bisected until the offending
rows are isolated; they decode to null and ``classify_undecodable`` names what is wrong with
them (cost: a few extra decodes per broken row, none when the chunk is clean). Polars decodes a
chunk as one JSON array, so invalid rows could also shift their neighbours without an error:
decoded ids are checked against the receiver's header ids (see ``decode_events``).

``json_path_match`` (a second full parse) is only used where a struct decode cannot answer and a
regex cannot answer exactly: on undecodable rows, on rows whose text suggests a string
``amount``, and for ``metadata`` text that is not the payload's only flat ``"metadata"`` map.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from transforms.rules import Rule, first_match

S = pl.String
_CARD = pl.Struct({"brand": S, "last4": S, "country": S})
_BILLING = pl.Struct({"address": pl.Struct({"country": S})})

#: ``data.object`` fields read from PaymentIntents, Charges, Refunds and Disputes.
OBJECT = pl.Struct(
    {
        "id": S,
        "object": S,
        "amount": S,
        "amount_received": S,
        "amount_captured": S,
        "amount_refunded": S,
        "currency": S,
        "customer": S,
        "status": S,
        "payment_intent": S,
        "charge": S,
        "latest_charge": S,
        "failure_code": S,
        "failure_message": S,
        "reason": S,
        "metadata": pl.Struct({"merchant_id": S}),
        "payment_method_types": pl.List(S),
        "payment_method_details": pl.Struct({"type": S, "card": _CARD}),
        "billing_details": _BILLING,
        "outcome": pl.Struct({"type": S, "reason": S}),
        "last_payment_error": pl.Struct(
            {
                "code": S,
                "decline_code": S,
                "message": S,
                "payment_method": pl.Struct({"card": _CARD, "billing_details": _BILLING}),
            }
        ),
    }
)
#: The Stripe event envelope.
EVENT = pl.Struct(
    {
        "id": S,
        "type": S,
        "account": S,
        "created": S,
        "livemode": S,
        "api_version": S,
        "data": pl.Struct({"object": OBJECT}),
    }
)

#: The first ``"id": "…"`` of a body: the envelope's in Stripe's key order.
FIRST_ID = r'"id"\s*:\s*"([^"\\]*)"'
#: Rows per ``json_decode`` call: small chunks decode faster (1.8 KB Stripe bodies: 7 µs a row at
#: 512–1024, 12 µs at 4096, 60 µs as one call) and bound the cost of a bad row.
CHUNK_ROWS = 1024
#: Chunks are decoded in parallel: one ``json_decode`` uses one core and releases the GIL.
_DECODERS = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="json-decode")


def decode_events(payload: pl.Series, event_ids: pl.Series | None = None) -> pl.Series:
    """Decode JSON bodies to ``EVENT`` structs, row for row; null where a body cannot be decoded.

    ``event_ids`` (the receiver's ``event-id`` header, parsed from each body on its own) guard
    the alignment: ``str.json_decode`` parses a chunk as one JSON array, so a row that is not
    valid JSON on its own could spill into its neighbours (``{…},{…}`` is two elements). A chunk
    whose ids do not match is decoded again the safe way. Rows without a header id are checked
    against the first ``"id"`` in their text (a wrong guess only costs the safe way); a null
    body must decode to null."""
    first_id = payload.str.extract(FIRST_ID, 1)
    ids = first_id if event_ids is None else event_ids.fill_null(first_id)
    ids = ids.set(payload.is_null(), None)
    parts = list(
        _DECODERS.map(
            lambda offset: _decode_chunk(
                payload.slice(offset, CHUNK_ROWS), ids.slice(offset, CHUNK_ROWS)
            ),
            range(0, len(payload), CHUNK_ROWS),
        )
    )
    if not parts:
        return pl.Series("event", [], dtype=EVENT)
    return pl.concat(parts).alias("event")


def _try_decode(chunk: pl.Series, ids: pl.Series | None = None) -> pl.Series | None:
    """The decoded chunk, or None when it raises or comes back misaligned."""
    try:
        decoded = chunk.str.json_decode(EVENT)
    except pl.exceptions.PolarsError:
        return None
    if len(decoded) != len(chunk):
        return None
    if ids is not None and not decoded.struct.field("id").eq_missing(ids).all():
        return None
    return decoded


def _decode_chunk(chunk: pl.Series, ids: pl.Series) -> pl.Series:
    decoded = _try_decode(chunk, ids)
    if decoded is not None:
        return decoded
    # Safe way: rows that are not a JSON object on their own are nulled (each row is parsed
    # alone), so the rest cannot spill into each other; type mismatches are then bisected.
    is_object = chunk.str.json_path_match("$").str.starts_with("{").fill_null(False)
    return _bisect(chunk.set(~is_object, None))


def _bisect(chunk: pl.Series) -> pl.Series:
    decoded = _try_decode(chunk)
    if decoded is not None:
        return decoded
    if len(chunk) == 1:
        return pl.Series(chunk.name, [None], dtype=EVENT)
    middle = len(chunk) // 2
    return pl.concat([_bisect(chunk.slice(0, middle)), _bisect(chunk.slice(middle))])


def _path(payload: pl.Expr, path: str) -> pl.Expr:
    return payload.str.json_path_match(path)


def _is_container(text: pl.Expr) -> pl.Expr:
    return text.str.starts_with("{") | text.str.starts_with("[")


def classify_undecodable(payload: pl.Expr) -> list[pl.Expr]:
    """For rows ``decode_events`` left null: ``_u_id``, ``_u_type``, ``_u_code``, ``_u_detail``.

    Meant for the few undecodable rows only (each ``json_path_match`` is a full parse)."""
    root = _path(payload, "$")
    event_id, event_type = _path(payload, "$.id"), _path(payload, "$.type")
    obj = _path(payload, "$.data.object")
    object_id = _path(payload, "$.data.object.id")
    amount = _path(payload, "$.data.object.amount")
    currency = _path(payload, "$.data.object.currency")
    rules: list[Rule] = [
        (root.is_null(), "INVALID_JSON", "payload is not valid JSON"),
        (~root.str.starts_with("{"), "INVALID_JSON", "payload is not a JSON object"),
        (event_id.is_null() | _is_container(event_id), "MISSING_EVENT_ID", "no usable id"),
        (event_type.is_null() | _is_container(event_type), "MISSING_EVENT_TYPE", "no usable type"),
        (~obj.str.starts_with("{").fill_null(False), "MISSING_DATA_OBJECT", "no data.object"),
        (object_id.is_null() | _is_container(object_id), "MISSING_OBJECT_ID", "no data.object.id"),
        (_is_container(amount), "INVALID_AMOUNT", "data.object.amount is not a number"),
        (_is_container(currency), "INVALID_CURRENCY", "data.object.currency is not a string"),
        (pl.lit(True), "INVALID_FIELD_TYPE", "a field has an unexpected JSON type"),
    ]
    code, detail = first_match(rules)
    scalar = ~_is_container(event_id).fill_null(False)
    typed = ~_is_container(event_type).fill_null(False)
    return [
        pl.when(scalar).then(event_id).alias("_u_id"),
        pl.when(typed).then(event_type).alias("_u_type"),
        code.alias("_u_code"),
        detail.alias("_u_detail"),
    ]


#: Any ``"amount…": "…"`` in the text: cheap pre-filter for string amounts (may over-match
#: nested objects or metadata; ``amount_is_number`` then decides exactly).
AMOUNT_AS_STRING = r'"amount(?:_received|_captured|_refunded)?"\s*:\s*"'


def amount_is_number(payload: pl.Expr, name: str = "amount") -> pl.Expr:
    """Whether ``data.object.<name>`` is a JSON number (not a string). Full parse: use on the
    rows ``AMOUNT_AS_STRING`` flags only."""
    non_negative = _path(payload, f"$.data.object.{name}[?(@ >= 0)]")
    negative = _path(payload, f"$.data.object.{name}[?(@ < 0)]")
    return non_negative.is_not_null() | negative.is_not_null()


#: Where ``"metadata":`` occurs; once means it is ``data.object``'s own when that has one.
METADATA_KEY = r'"metadata"\s*:'
#: A flat JSON object (Stripe metadata maps strings to strings) after ``"metadata":``.
FLAT_METADATA = r'"metadata"\s*:\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})'


def metadata_text(payload: pl.Expr) -> pl.Expr:
    """``data.object.metadata`` as compact JSON text (null when absent). Full parse."""
    return _path(payload, "$.data.object.metadata")


def quick_metadata_text(payload: pl.Expr, has_metadata: pl.Expr) -> pl.Expr:
    """``data.object.metadata`` text cut out of the payload by a regex, where that is exact: the
    object has metadata, it is the payload's only ``"metadata"`` key and it is a flat map (the
    text is kept as sent). Null elsewhere: use ``metadata_text`` for those rows."""
    single = payload.str.count_matches(METADATA_KEY) == 1
    return pl.when(has_metadata & single).then(payload.str.extract(FLAT_METADATA, 1))
