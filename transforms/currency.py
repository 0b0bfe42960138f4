"""ISO 4217 minor-unit exponents, built once from the ``iso4217`` package (never a hand list).

A code is a payment currency when ISO 4217 lists it with a minor-unit exponent: the X-codes for
metals, funds units and testing (XAU, XDR, XTS, XXX …) have none, and withdrawn codes such as DEM
are not in the table at all. Currencies whose exponent exceeds the scale of the ``amount``
column (CLF and UYW have 4) cannot be stored exactly and are treated as unsupported.
"""

from __future__ import annotations

import polars as pl
from iso4217 import Currency

from transforms.schemas import AMOUNT, AMOUNT_SCALE

#: Active ISO 4217 currency (upper case) -> exponent, for every code with a minor unit.
ISO4217_EXPONENTS: dict[str, int] = {
    c.code: c.exponent for c in Currency if isinstance(c.exponent, int)
}
#: The subset ``amount`` can represent exactly (exponent <= its decimal scale).
EXPONENTS: dict[str, int] = {
    code: exp for code, exp in ISO4217_EXPONENTS.items() if exp <= AMOUNT_SCALE
}


def exponent(currency: pl.Expr) -> pl.Expr:
    """The ISO 4217 exponent of an upper-case currency code; null when it is no payment currency
    (or has more decimals than ``amount`` can hold)."""
    return currency.replace_strict(EXPONENTS, default=None, return_dtype=pl.Int64)


def unsupported_reason(currency: pl.Expr) -> pl.Expr:
    """Why a currency code is rejected (null when it is supported), for ``error_detail``."""
    known = currency.is_in(list(ISO4217_EXPONENTS))
    return (
        pl.when(currency.is_null())
        .then(pl.lit("data.object.currency is missing"))
        .when(known & exponent(currency).is_null())
        .then(pl.format("{} has more decimals than amount holds ({})", currency, AMOUNT_SCALE))
        .when(~known)
        .then(pl.format("{} is not an active ISO 4217 payment currency", currency))
    )


def to_major(amount_minor: pl.Expr, exp: pl.Expr) -> pl.Expr:
    """Exact major units: ``amount_minor / 10**exp`` as ``Decimal(20, 3)`` (no float on the way)."""
    divisor = pl.lit(10, dtype=pl.Int64).pow(exp).cast(pl.Decimal(20, 0))
    return (amount_minor.cast(AMOUNT) / divisor).cast(AMOUNT)
