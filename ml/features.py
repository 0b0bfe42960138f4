"""Model features of payment events: pure Polars, point-in-time correct, shared by training and
scoring so that they cannot drift apart.

Grain of ``build_features``: one row per row of ``events``, in the same order: its keys, its own
attributes (card, country, decline code, local clock) and aggregates of the same customer, card,
order, merchant and currency. An aggregate of an event at time t reads only rows of
``history ∪ events`` whose ``provider_created_at`` is strictly before t (second resolution, as
Stripe stamps events) and at most ``LOOKBACK`` before it. Features therefore never see the future,
and scoring with a history that starts ``HISTORY`` before the batch (``history_start``) gives the
same values as training on the full history.

Money is never added up across currencies: amounts in major units of JPY, USD and KWD differ by
orders of magnitude for the same basket. Every amount feature (``AMOUNT_FEATURES``) is a ratio of
amounts of one currency: the event's amount against the same customer's, the same merchant's or
the whole currency's mean successful payment in that currency over the last 30 days (windows keyed
by (customer, currency), (merchant, currency) and currency). Ratios are unit-free, so they are
comparable across currencies and do not depend on a currency's minor-unit exponent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

import numpy as np
import polars as pl
import polars.selectors as cs

from ml.windows import KeyedWindows, keyed_windows

LOOKBACK = timedelta(days=30)
_LOOKBACK_S = int(LOOKBACK.total_seconds())
H, D = 3600, 86400

# fmt: off
SUCCEEDED, FAILED = "payment.succeeded", "payment.failed"
CHARGE_SUCCEEDED, DISPUTE_CREATED = "charge.succeeded", "dispute.created"
REFUND_CREATED = "refund.created"

#: Fixed vocabularies: a category's code must not depend on the batch.
DECLINE_CODES = ("insufficient_funds", "generic_decline", "do_not_honor", "lost_card",
                 "stolen_card", "card_velocity_exceeded", "expired_card", "incorrect_cvc",
                 "processing_error", "fraudulent", "incorrect_number", "try_again_later",
                 "authentication_required", "card_not_supported", "pickup_card",
                 "restricted_card", "transaction_not_allowed")
CARD_BRANDS = ("visa", "mastercard", "amex", "jcb", "discover", "unionpay", "diners")
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "BR", "IN", "NG", "MX", "AE", "JP", "KR", "KW")
#: Standard UTC offset by country, to read the customer's local clock (time of day, paydays).
UTC_OFFSET_HOURS = {"US": -5, "CA": -5, "MX": -6, "BR": -3, "GB": 0, "DE": 1, "FR": 1, "NL": 1,
                    "NG": 1, "AE": 4, "IN": 5, "JP": 9, "KR": 9, "KW": 3}

#: Silver columns the features read (others are ignored; missing ones are treated as null).
INPUT_COLUMNS: dict[str, pl.DataType] = {
    "event_id": pl.String(), "event_type": pl.String(), "merchant_id": pl.String(),
    "customer_id": pl.String(), "charge_id": pl.String(), "amount": pl.Float64(),
    "currency": pl.String(),
    "card_brand": pl.String(), "card_last_four": pl.String(), "card_country": pl.String(),
    "customer_country": pl.String(), "decline_code": pl.String(), "dispute_reason": pl.String(),
    "metadata": pl.String(), "provider_created_at": pl.Datetime("us", "UTC"),
}
CATEGORICAL = ("decline_code_cat", "card_brand_cat", "customer_country_cat")
DELAY_FEATURES = ("delay_hours", "retry_local_hour", "retry_day_of_week", "retry_day_of_month",
                  "retry_crosses_month_start", "retry_crosses_mid_month", "retry_crosses_friday")
FRAUD_FEATURES = (
    "log_amount_vs_currency", "local_hour", "day_of_week", "is_foreign_card", "card_brand_cat",
    "customer_country_cat", "c_attempts_1h", "c_attempts_24h", "c_attempts_7d", "c_success_30d",
    "c_fail_24h", "c_mean_amount_vs_currency_30d", "amount_vs_mean_30d", "c_new_cards_7d",
    "c_hours_since_success", "c_hours_since_attempt", "c_days_seen", "c_disputes_30d",
    "c_night_share_30d", "c_foreign_share_30d", "card_is_new", "card_attempts_24h",
    "card_attempts_30d", "m_attempts_7d", "m_fail_rate_7d", "m_fraud_dispute_rate_30d",
    "m_dispute_rate_30d", "amount_vs_merchant_mean",
)
RETRY_FEATURES = (
    "decline_code_cat", "log_amount_vs_currency", "customer_country_cat", "local_hour",
    "day_of_week", "day_of_month", "c_fail_30d", "c_success_30d", "c_fail_rate_30d",
    "c_hours_since_success", "c_success_trend", "o_prior_failures", "o_hours_since_first",
    "amount_vs_mean_30d", "m_fail_rate_7d", "card_is_new", *DELAY_FEATURES,
)
CHURN_FEATURES = (
    "is_failed_event", "log_amount_vs_currency", "customer_country_cat", "c_attempts_7d",
    "c_attempts_30d", "c_success_7d", "c_success_30d", "c_success_trend", "c_fail_24h",
    "c_fail_30d", "c_fail_rate_30d", "c_hours_since_success", "c_hours_since_attempt",
    "c_days_seen", "c_mean_amount_vs_currency_30d", "amount_trend", "amount_vs_mean_30d",
    "c_refunds_30d", "c_disputes_30d",
)
#: The features that read amounts: each a ratio of amounts of the event's own currency.
AMOUNT_FEATURES = ("log_amount_vs_currency", "amount_vs_mean_30d", "amount_trend",
                   "c_mean_amount_vs_currency_30d", "amount_vs_merchant_mean")
KEY_COLUMNS = ("event_id", "event_type", "merchant_id", "customer_id", "provider_created_at")


_CARD = KeyedWindows(
    ("customer_id", "card_brand", "card_last_four"),
    sums=(("card_attempts_24h", "_attempt", D), ("card_attempts_30d", "_attempt", 30 * D)),
)
_CUSTOMER = KeyedWindows(
    ("customer_id",),
    sums=(("c_attempts_1h", "_attempt", H), ("c_attempts_24h", "_attempt", D),
          ("c_attempts_7d", "_attempt", 7 * D), ("c_attempts_30d", "_attempt", 30 * D),
          ("c_success_7d", "_success", 7 * D), ("c_success_30d", "_success", 30 * D),
          ("c_fail_24h", "_failure", D), ("c_fail_30d", "_failure", 30 * D),
          ("c_new_cards_7d", "_card_first", 7 * D), ("c_disputes_30d", "_dispute", 30 * D),
          ("_c_night_30d", "_night", 30 * D), ("_c_foreign_30d", "_foreign", 30 * D),
          ("c_refunds_30d", "_refund", 30 * D)),
    hours_since=(("c_hours_since_success", "_success"), ("c_hours_since_attempt", "_attempt")),
    since_first=("c_days_seen", D),
)
_CUSTOMER_CURRENCY = KeyedWindows(
    ("customer_id", "currency"),
    sums=(("_cc_success_7d", "_success", 7 * D), ("_cc_success_30d", "_success", 30 * D),
          ("_cc_amount_7d", "_success_amount", 7 * D),
          ("_cc_amount_30d", "_success_amount", 30 * D)),
)
_ORDER = KeyedWindows(("customer_id", "_order_id"),
                      sums=(("o_prior_failures", "_failure", 30 * D),),
                      since_first=("o_hours_since_first", H))
_MERCHANT = KeyedWindows(
    ("merchant_id",),
    sums=(("m_attempts_7d", "_attempt", 7 * D), ("_m_fail_7d", "_failure", 7 * D),
          ("_m_success_30d", "_success", 30 * D), ("_m_fraud_30d", "_fraud_dispute", 30 * D),
          ("_m_disputes_30d", "_dispute", 30 * D)),
)
_MERCHANT_CURRENCY = KeyedWindows(
    ("merchant_id", "currency"),
    sums=(("_mc_success_30d", "_success", 30 * D), ("_mc_amount_30d", "_success_amount", 30 * D)),
)
_CURRENCY = KeyedWindows(
    ("currency",),
    sums=(("_cur_success_30d", "_success", 30 * D), ("_cur_amount_30d", "_success_amount", 30 * D)),
)
# fmt: on
#: Every keyed window of the features, the card's first (the customer's windows read the
#: ``_card_first`` flag worked out from it). The online path (``ml.online``) indexes the same specs.
WINDOWS: tuple[KeyedWindows, ...] = (
    _CARD,
    _CUSTOMER,
    _CUSTOMER_CURRENCY,
    _ORDER,
    _MERCHANT,
    _MERCHANT_CURRENCY,
    _CURRENCY,
)
#: The order an event belongs to, from its ``metadata`` JSON text.
ORDER_ID_PATTERN = r'"order_id"\s*:\s*"([^"]*)"'
#: The columns ``_prepare`` fills from the event of the same charge and second.
CARD_FILL_COLUMNS = ("card_brand", "card_last_four", "card_country", "customer_country")
LOOKBACK_S = _LOOKBACK_S

#: How far before a batch the history read to score it must reach for the features to equal the
#: training ones: ``LOOKBACK``, plus the window of the sums over ``_card_first``, a flag that is
#: itself worked out over 30 days of history (``c_new_cards_7d`` of an event counts the cards first
#: seen in the 7 days before it; whether a card was new 7 days back depends on the 30 days before
#: that): 37 days.
HISTORY = LOOKBACK + timedelta(seconds=max(w for _, c, w in _CUSTOMER.sums if c == "_card_first"))


def history_start(events: pl.DataFrame) -> datetime:
    """The earliest ``provider_created_at`` of the history that scoring ``events`` needs
    (``HISTORY`` before the first of them)."""
    return events["provider_created_at"].min() - HISTORY


def build_features(events: pl.DataFrame, history: pl.DataFrame | None = None) -> pl.DataFrame:
    """Features of every row of ``events`` (same order) from ``history ∪ events`` before it.

    ``history`` may overlap ``events`` (rows are matched by ``event_id``); without it the events
    are their own history, as in training.
    """
    frame = _combined(events, history)
    query = pl.col("_q").is_not_null()
    people = frame if history is None else _rows_sharing(frame, "customer_id")
    card = keyed_windows(people, _CARD, _LOOKBACK_S)  # every row: history rows need _card_first
    people = people.with_columns(_card_first=_card_first(card["card_attempts_30d"]))
    asked = people["_q"].is_not_null()
    parts = [
        people.filter(asked).select(
            "_q", *KEY_COLUMNS, "_clock", "amount", "card_last_four", *_own_features()
        ),
        card.filter(asked).select("card_attempts_24h", "card_attempts_30d"),
        *(
            keyed_windows(people, spec, _LOOKBACK_S, wanted=query)
            for spec in (_CUSTOMER, _CUSTOMER_CURRENCY, _ORDER)
        ),
    ]
    mine = pl.concat(parts, how="horizontal")
    shops = _shared_windows(
        frame, history is not None, "merchant_id", _MERCHANT, _MERCHANT_CURRENCY
    )
    money = _shared_windows(frame, history is not None, "currency", _CURRENCY)
    out = mine.join(shops, on="_q", how="left").join(money, on="_q", how="left").sort("_q")
    return _derived(out).drop(
        "amount", "card_last_four", cs.starts_with("_") - cs.by_name("_clock")
    )


def prepared_history(history: pl.DataFrame) -> pl.DataFrame:
    """History rows as the windows read them (one per event id): the flags of ``_prepare``,
    ``_t`` and ``_card_first``, for an index of the windows (``ml.online``)."""
    frame = _prepare(select_inputs(history).unique("event_id", keep="first"))
    card = keyed_windows(frame, _CARD, _LOOKBACK_S)
    return frame.with_columns(_card_first=_card_first(card["card_attempts_30d"]))


def _card_first(card_attempts_30d: pl.Series) -> pl.Expr:
    """An attempt with a known card the customer had not used in the 30 days before it."""
    return (pl.col("_attempt") > 0) & _card_known() & pl.lit(card_attempts_30d == 0)


def _shared_windows(
    frame: pl.DataFrame, trim: bool, key: str, *specs: KeyedWindows
) -> pl.DataFrame:
    """``_q`` and the windows of ``specs`` for the query rows, over the rows sharing their ``key``
    (all rows unless ``trim``; then only rows ``LOOKBACK`` before the first query row or later:
    these windows read nothing older, unlike the customer's, which need ``HISTORY``)."""
    query = pl.col("_q").is_not_null()
    rows = frame
    if trim:
        first = frame.filter(query)["_t"].min()
        rows = _rows_sharing(frame, key).filter(pl.col("_t") >= first - _LOOKBACK_S)
    windows = [keyed_windows(rows, spec, _LOOKBACK_S, wanted=query) for spec in specs]
    return pl.concat([rows.filter(query).select("_q"), *windows], how="horizontal")


@cache
def feature_names() -> frozenset[str]:
    """What a model's features can name: every column ``build_features`` gives and the delay
    features ``with_retry_delay`` adds."""
    built = build_features(pl.DataFrame(schema=INPUT_COLUMNS)).columns
    return frozenset(built) | frozenset(DELAY_FEATURES)


def with_retry_delay(features: pl.DataFrame, delay_hours: pl.Expr | float) -> pl.DataFrame:
    """Add the delay features of retrying each failed event ``delay_hours`` later (local clock)."""
    delay = delay_hours if isinstance(delay_hours, pl.Expr) else pl.lit(float(delay_hours))
    now, then = pl.col("_clock"), pl.col("_clock") + pl.duration(seconds=delay * 3600)
    months = then.dt.year() * 12 + then.dt.month() - (now.dt.year() * 12 + now.dt.month())
    mid = months + (then.dt.day() >= 15).cast(pl.Int32) - (now.dt.day() >= 15).cast(pl.Int32)
    day0, day1 = now.dt.epoch("d"), then.dt.epoch("d")  # 1970-01-02 was a Friday
    fridays = (day1 - 1).floordiv(7) - (day0 - 1).floordiv(7)
    return features.with_columns(
        delay_hours=delay.cast(pl.Float64),
        retry_local_hour=(then.dt.hour() + then.dt.minute() / 60).cast(pl.Float64),
        retry_day_of_week=then.dt.weekday().cast(pl.Float64),
        retry_day_of_month=then.dt.day().cast(pl.Float64),
        retry_crosses_month_start=(months > 0).cast(pl.Float64),
        retry_crosses_mid_month=(mid > 0).cast(pl.Float64),
        retry_crosses_friday=(fridays > 0).cast(pl.Float64),
    )


def design_matrix(features: pl.DataFrame, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The model input: ``names`` in order as a float64 matrix (null → NaN)."""
    return features.select(pl.col(n).cast(pl.Float64) for n in names).to_numpy()


def _combined(events: pl.DataFrame, history: pl.DataFrame | None) -> pl.DataFrame:
    """Events (``_q`` = their position) and the history rows that are not events, prepared."""
    frame = select_inputs(events).with_row_index("_q")
    if history is not None:
        older = select_inputs(history).unique("event_id", keep="first")
        older = older.join(frame.select("event_id"), on="event_id", how="anti")
        older = older.with_columns(_q=pl.lit(None, pl.UInt32)).select(frame.columns)
        frame = pl.concat([frame, older])
    return _prepare(frame)


def select_inputs(frame: pl.DataFrame) -> pl.DataFrame:
    """The silver columns features read, typed (missing ones as nulls)."""
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in INPUT_COLUMNS.items()
    )


def _prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """Flags of what each row is, the order id, the local clock, and the card of a payment event
    filled in from its charge's event of the same second (Stripe's payment intent events do not
    carry the card; nothing later is used)."""
    kind = pl.col("event_type")
    frame = frame.with_columns(_t=pl.col("provider_created_at").dt.epoch("s"))
    fill = {
        c: pl.col(c).fill_null(pl.col(c).max().over("charge_id", "_t")) for c in CARD_FILL_COLUMNS
    }
    offset = pl.col("customer_country").fill_null(pl.col("card_country"))
    hours = offset.replace_strict(UTC_OFFSET_HOURS, default=0, return_dtype=pl.Int64)
    frame = frame.with_columns(**fill).with_columns(
        _attempt=kind.is_in([SUCCEEDED, FAILED]).cast(pl.Int32),
        _success=(kind == SUCCEEDED).cast(pl.Int32),
        _failure=(kind == FAILED).cast(pl.Int32),
        _success_amount=pl.when(kind == SUCCEEDED).then(pl.col("amount")).otherwise(0.0),
        _dispute=(kind == DISPUTE_CREATED).cast(pl.Int32),
        _fraud_dispute=((kind == DISPUTE_CREATED) & (pl.col("dispute_reason") == "fraudulent"))
        .fill_null(False)
        .cast(pl.Int32),
        _refund=(kind == REFUND_CREATED).cast(pl.Int32),
        _order_id=pl.col("metadata").str.extract(ORDER_ID_PATTERN),
        _clock=pl.col("provider_created_at") + pl.duration(hours=hours),
    )
    night = (pl.col("_clock").dt.hour() < 6) & (pl.col("_attempt") > 0)
    foreign = (pl.col("card_country") != pl.col("customer_country")).fill_null(False)
    return frame.with_columns(
        _night=night.cast(pl.Int32), _foreign=(foreign & (pl.col("_attempt") > 0)).cast(pl.Int32)
    )


def _rows_sharing(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The query rows and the history rows whose ``key`` one of the query rows has."""
    wanted = frame.filter(pl.col("_q").is_not_null())[key].drop_nulls().unique()
    return frame.filter(pl.col("_q").is_not_null() | pl.col(key).is_in(wanted.implode()))


def _card_known() -> pl.Expr:
    return pl.col("card_last_four").is_not_null()


def _code(column: str, vocabulary: tuple[str, ...]) -> pl.Expr:
    """Index in a fixed vocabulary; unknown values share the last code, null stays null."""
    mapping = {v: float(i) for i, v in enumerate(vocabulary)}
    code = pl.col(column).replace_strict(
        mapping, default=float(len(vocabulary)), return_dtype=pl.Float64
    )
    return pl.when(pl.col(column).is_not_null()).then(code)


def _own_features() -> list[pl.Expr]:
    """Features of the event itself."""
    clock, country = pl.col("_clock"), pl.col("customer_country")
    return [
        (clock.dt.hour() + clock.dt.minute() / 60).cast(pl.Float64).alias("local_hour"),
        clock.dt.weekday().cast(pl.Float64).alias("day_of_week"),
        clock.dt.day().cast(pl.Float64).alias("day_of_month"),
        (pl.col("card_country") != country).cast(pl.Float64).alias("is_foreign_card"),
        (pl.col("event_type") == FAILED).cast(pl.Float64).alias("is_failed_event"),
        _code("decline_code", DECLINE_CODES).alias("decline_code_cat"),
        _code("card_brand", CARD_BRANDS).alias("card_brand_cat"),
        _code("customer_country", COUNTRIES).alias("customer_country_cat"),
    ]


def _ratio(num: str | pl.Expr, den: str | pl.Expr) -> pl.Expr:
    num = pl.col(num) if isinstance(num, str) else num
    den = pl.col(den) if isinstance(den, str) else den
    return pl.when(den > 0).then(num / den).otherwise(None)


def _derived(frame: pl.DataFrame) -> pl.DataFrame:
    """Rates and ratios of the windowed aggregates; amounts only against amounts of the same
    currency (``AMOUNT_FEATURES``)."""
    amount = pl.col("amount")
    mean_30d = _ratio("_cc_amount_30d", "_cc_success_30d")  # the customer's, in this currency
    currency_30d = _ratio("_cur_amount_30d", "_cur_success_30d")
    return frame.with_columns(
        log_amount_vs_currency=pl.when(amount > 0).then((amount / currency_30d).log()),
        c_mean_amount_vs_currency_30d=_ratio(mean_30d, currency_30d),
        amount_vs_mean_30d=_ratio(amount, mean_30d),
        amount_trend=_ratio(_ratio("_cc_amount_7d", "_cc_success_7d"), mean_30d),
        c_success_trend=_ratio(pl.col("c_success_7d") * (30 / 7), "c_success_30d"),
        c_fail_rate_30d=_ratio("c_fail_30d", "c_attempts_30d"),
        c_night_share_30d=_ratio("_c_night_30d", "c_attempts_30d"),
        c_foreign_share_30d=_ratio("_c_foreign_30d", "c_attempts_30d"),
        card_is_new=pl.when(_card_known()).then(
            (pl.col("card_attempts_30d") == 0).cast(pl.Float64)
        ),
        m_fail_rate_7d=_ratio("_m_fail_7d", "m_attempts_7d"),
        m_fraud_dispute_rate_30d=_ratio("_m_fraud_30d", "_m_success_30d"),
        m_dispute_rate_30d=_ratio("_m_disputes_30d", "_m_success_30d"),
        amount_vs_merchant_mean=_ratio(amount, _ratio("_mc_amount_30d", "_mc_success_30d")),
    )
