"""Money rules per provider: the minor-unit exponent and the amount limit of every currency, as
the provider's API counts them, and the vectorized expressions that apply them.

One table per provider (``MoneyRules``), built from the maintained ``iso4217`` package (ISO 4217
as the base: a code is a payment currency when ISO lists it with a minor unit, so withdrawn codes
such as DEM and the X-codes for metals, funds and testing — XAU, XDR, XTS, XXX — are not) plus
the provider's documented exceptions, each citing its rule. A provider is added by writing its
table and listing it in ``PROVIDERS``; rows are matched to a table by their ``provider`` column.

Limits are in minor units per currency (never one major-unit figure for all currencies: a
2,000,000 VND payment is about 80 USD), with the provider's documented exceptions, and can be
overridden per currency in settings (``LAKEHOUSE_AMOUNT_LIMITS_MINOR``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import polars as pl
from iso4217 import Currency

from settings.names import PROVIDER_STRIPE
from transforms.schemas import AMOUNT, AMOUNT_SCALE

#: Active ISO 4217 currency (upper case) -> exponent, for every code with a minor unit.
ISO4217_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {c.code: c.exponent for c in Currency if isinstance(c.exponent, int)}
)


@dataclass(frozen=True)
class MoneyRules:
    """One provider's money: the exponent of each currency it accepts, and its amount limits."""

    provider: str
    exponents: Mapping[str, int]  # upper-case code -> minor-unit exponent the API uses
    default_limit_minor: int  # largest amount in minor units, unless ``limits_minor`` says
    limits_minor: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        too_fine = {c: e for c, e in self.exponents.items() if e > AMOUNT_SCALE}
        if too_fine:
            raise ValueError(f"{self.provider}: exponents beyond amount's scale: {too_fine}")

    def limits(self, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
        """Limit in minor units of every accepted currency, ``overrides`` (by code) winning."""
        limits = dict.fromkeys(self.exponents, self.default_limit_minor)
        limits |= {c: v for c, v in self.limits_minor.items() if c in self.exponents}
        return limits | {c.upper(): v for c, v in (overrides or {}).items()}


def _stripe() -> MoneyRules:
    """Stripe's rules, from https://docs.stripe.com/currencies (checked 2026-12)."""
    exponents = dict(ISO4217_EXPONENTS)
    # "Zero-decimal currencies": amounts are whole units (charge ¥500 with amount=500). ISO agrees
    # for all of them but MGA, which ISO gives two decimals (so MGA amounts are not divided).
    zero_decimal = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
    exponents |= dict.fromkeys(zero_decimal, 0)
    # "Three-decimal currencies" BHD, JOD, KWD, OMR, TND: ISO's exponent 3 stands; Stripe asks
    # integrations to round to the nearest ten (5.124 KWD is sent as 5120 or 5130), so amounts
    # it sends end in 0. Nothing to change in the exponent.
    # "Special cases", ISK: zero-decimal since 2023 (amounts must be multiples of 100), yet
    # "ISK will remain a two-decimal currency in the Stripe API, and an ISK amount of 100 will
    # continue to represent 1 króna" (support.stripe.com, deprecation of fractional ISK). ISO: 0.
    exponents["ISK"] = 2
    # "Special cases", HUF and TWD: zero-decimal for payouts only; charges, refunds and disputes
    # keep two decimals in the API (HUF 10.45 is 1045). ISO also says 2: nothing to change.
    return MoneyRules(
        provider=PROVIDER_STRIPE,
        exponents=MappingProxyType(exponents),
        # "Minimum and maximum charge amounts": "The amount value supports up to twelve digits
        # for IDR (for example, a value of 999999999999 for a charge of 9,999,999,999.99 IDR),
        # and up to eight digits for all other currencies (for example, a value of 99999999 for
        # a charge of 999,999.99 USD)."
        default_limit_minor=99_999_999,
        limits_minor=MappingProxyType({"IDR": 999_999_999_999}),
    )


STRIPE = _stripe()
#: Provider (as in the ``provider`` column) -> its money rules.
PROVIDERS: Mapping[str, MoneyRules] = MappingProxyType({STRIPE.provider: STRIPE})
#: Every currency code some provider accepts (the row contract's ``currency`` check).
CURRENCIES: tuple[str, ...] = tuple(sorted({c for r in PROVIDERS.values() for c in r.exponents}))


def _per_provider(provider: pl.Expr, value: pl.Expr | None, per: dict[str, pl.Expr]) -> pl.Expr:
    """``per[p]`` where ``provider == p``; ``value`` (or null) for providers without rules."""
    result = value if value is not None else pl.lit(None, dtype=pl.Int64)
    for name, expr in per.items():
        result = pl.when(provider == name).then(expr).otherwise(result)
    return result


def exponent(provider: pl.Expr, currency: pl.Expr) -> pl.Expr:
    """The minor-unit exponent the provider uses for an upper-case currency code; null when the
    code is no payment currency (or the provider has no rules)."""
    return _per_provider(
        provider,
        None,
        {
            name: currency.replace_strict(
                dict(rules.exponents), default=None, return_dtype=pl.Int64
            )
            for name, rules in PROVIDERS.items()
        },
    )


def limit_minor(
    provider: pl.Expr, currency: pl.Expr, overrides: Mapping[str, int] | None = None
) -> pl.Expr:
    """The provider's largest amount in minor units for the currency, ``overrides`` winning."""
    return _per_provider(
        provider,
        None,
        {
            name: currency.replace_strict(
                rules.limits(overrides), default=rules.default_limit_minor, return_dtype=pl.Int64
            )
            for name, rules in PROVIDERS.items()
        },
    )


def unsupported_reason(provider: pl.Expr, currency: pl.Expr) -> pl.Expr:
    """Why a currency code is rejected (null when the provider accepts it), for ``error_detail``."""
    return (
        pl.when(currency.is_null())
        .then(pl.lit("data.object.currency is missing"))
        .when(~provider.is_in(list(PROVIDERS)))
        .then(pl.format("no money rules for provider {}", provider))
        .when(exponent(provider, currency).is_null())
        .then(pl.format("{} is not an active ISO 4217 payment currency", currency))
    )


def to_major(amount_minor: pl.Expr, exp: pl.Expr) -> pl.Expr:
    """Exact major units: ``amount_minor / 10**exp`` as the ``amount`` decimal (no float)."""
    divisor = pl.lit(10, dtype=pl.Int64).pow(exp).cast(pl.Decimal(AMOUNT.precision, 0))
    return (amount_minor.cast(AMOUNT) / divisor).cast(AMOUNT)


def major_amount(frame: pl.DataFrame, minor: str = "amount_minor") -> pl.Series:
    """``amount`` of silver rows recomputed from ``minor``, ``provider`` and ``currency``."""
    exp = exponent(pl.col("provider"), pl.col("currency"))
    return frame.select(to_major(pl.col(minor), exp).alias("amount")).to_series()
