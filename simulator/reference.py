"""Reference data of the simulator: Stripe's API version, currencies, card brands, decline codes,
dispute reasons and the default merchants.

Plain constants and small frozen dataclasses, so the stream generator and the labelled history
generator draw from the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The Stripe API version stamped on every simulated event.
API_VERSION = "2024-06-20"

#: ISO 4217 minor-unit exponent of each simulated currency (Stripe sends lower-case codes).
CURRENCY_EXPONENT: dict[str, int] = {
    "usd": 2,
    "eur": 2,
    "gbp": 2,
    "cad": 2,
    "jpy": 0,  # zero-decimal
    "krw": 0,  # zero-decimal
    "kwd": 3,  # three-decimal
}

#: Typical basket per currency: (median in major units, rounding step in minor units).
TYPICAL_AMOUNT: dict[str, tuple[float, int]] = {
    "usd": (45.0, 1),
    "eur": (40.0, 1),
    "gbp": (35.0, 1),
    "cad": (55.0, 1),
    "jpy": (4800.0, 10),
    "krw": (52000.0, 100),
    "kwd": (14.0, 10),  # Stripe: three-decimal amounts are rounded to the nearest ten
}

#: Card networks as Stripe spells them, with their share of simulated cards.
CARD_BRANDS: dict[str, float] = {
    "visa": 0.50,
    "mastercard": 0.30,
    "amex": 0.09,
    "jcb": 0.04,
    "discover": 0.03,
    "unionpay": 0.03,
    "diners": 0.01,
}
CARD_FUNDING: dict[str, float] = {"credit": 0.60, "debit": 0.35, "prepaid": 0.05}

#: Countries of customers and cards beyond the merchants' own (cross-border traffic).
OTHER_COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "BR", "IN", "NG", "MX", "AE")

#: Asynchronous (bank debit) payment method per currency, for ``payment_intent.processing``.
ASYNC_METHOD: dict[str, str] = {"eur": "sepa_debit", "usd": "us_bank_account"}


@dataclass(frozen=True)
class Decline:
    """How Stripe reports one decline: error ``code``, ``decline_code``, message and outcome."""

    decline_code: str
    code: str
    message: str
    network_status: str = "declined_by_network"
    outcome_type: str = "issuer_declined"


_DECLINED = "Your card was declined."

#: Real Stripe decline codes, keyed by ``decline_code``.
DECLINES: dict[str, Decline] = {
    d.decline_code: d
    for d in (
        Decline("insufficient_funds", "card_declined", "Your card has insufficient funds."),
        Decline("generic_decline", "card_declined", _DECLINED),
        Decline("do_not_honor", "card_declined", _DECLINED),
        Decline("lost_card", "card_declined", _DECLINED),
        Decline("stolen_card", "card_declined", _DECLINED),
        Decline(
            "card_velocity_exceeded",
            "card_declined",
            "Your card was declined for making repeated attempts too frequently or exceeding "
            "its amount limit.",
        ),
        Decline("expired_card", "expired_card", "Your card has expired."),
        Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
        Decline(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        Decline("fraudulent", "card_declined", _DECLINED, "not_sent_to_network", "blocked"),
    )
}

#: Share of each decline code among simulated failed payments.
DECLINE_WEIGHTS: dict[str, float] = {
    "insufficient_funds": 0.30,
    "generic_decline": 0.20,
    "do_not_honor": 0.12,
    "expired_card": 0.08,
    "incorrect_cvc": 0.08,
    "card_velocity_exceeded": 0.05,
    "lost_card": 0.04,
    "stolen_card": 0.03,
    "fraudulent": 0.06,
    "processing_error": 0.04,
}

#: Dispute reasons with their share, and the Visa / Mastercard network reason codes.
DISPUTE_REASONS: dict[str, float] = {
    "fraudulent": 0.55,
    "product_not_received": 0.20,
    "duplicate": 0.08,
    "subscription_canceled": 0.07,
    "product_unacceptable": 0.06,
    "credit_not_processed": 0.04,
}
NETWORK_REASON_CODES: dict[str, dict[str, str]] = {
    "visa": {
        "fraudulent": "10.4",
        "product_not_received": "13.1",
        "duplicate": "12.6.1",
        "subscription_canceled": "13.2",
        "product_unacceptable": "13.3",
        "credit_not_processed": "13.6",
    },
    "mastercard": {
        "fraudulent": "4837",
        "product_not_received": "4855",
        "duplicate": "4834",
        "subscription_canceled": "4841",
        "product_unacceptable": "4853",
        "credit_not_processed": "4860",
    },
}

REFUND_REASONS: dict[str | None, float] = {
    "requested_by_customer": 0.70,
    None: 0.15,
    "duplicate": 0.10,
    "fraudulent": 0.05,
}


@dataclass(frozen=True)
class Merchant:
    """A seller. Connect merchants are identified by the event's ``account`` (``acct_…``); the
    others by ``metadata.merchant_id`` on the objects the platform creates."""

    id: str
    name: str
    country: str
    currency: str
    connect: bool = True
    #: Relative riskiness (1.0 = average): scales declines, fraud blocks and disputes.
    risk: float = 1.0

    @property
    def account(self) -> str | None:
        """The event's ``account`` field: the merchant id for Connect merchants, else None."""
        return self.id if self.connect else None

    @property
    def metadata(self) -> dict[str, str]:
        """Metadata the platform stamps on objects of a non-Connect merchant."""
        return {} if self.connect else {"merchant_id": self.id}

    @property
    def statement_descriptor(self) -> str:
        return self.name.upper()[:22]


#: The default merchants: several countries and currencies, two not on Connect, uneven risk.
MERCHANTS: tuple[Merchant, ...] = (
    Merchant("acct_1PbRkLc0ff33Roas", "Brooklyn Coffee Roasters", "US", "usd", risk=0.6),
    Merchant("acct_1PbRkMtKyStation", "Tokyo Stationery", "JP", "jpy", risk=0.5),
    Merchant("acct_1PbRkNs30uLBeaut", "Seoul Beauty Lab", "KR", "krw", risk=0.9),
    Merchant("acct_1PbRkPgu1fE1ectr", "Gulf Electronics", "KW", "kwd", risk=1.8),
    Merchant("acct_1PbRkQLy0nFashio", "Lyon Fashion House", "FR", "eur", risk=1.0),
    Merchant("acct_1PbRkRp1xe1G1ftC", "Pixel Gift Cards", "US", "usd", risk=3.0),
    Merchant("merchant_berlin_bikes", "Berlin Bikes", "DE", "eur", connect=False, risk=0.8),
    Merchant("merchant_london_tea", "London Tea Company", "GB", "gbp", connect=False, risk=0.7),
    Merchant("merchant_maple_games", "Maple Games", "CA", "cad", connect=False, risk=1.4),
)
