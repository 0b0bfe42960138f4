"""PaymentIntent and Charge objects (``data.object``) built from explicit arguments.

No randomness here: the same ``Payment`` and arguments give the same object, so the stream
generator and the labelled history generator decide *what* happens and these functions only say
it the way Stripe does (API version 2024-06-20 field names and types).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulator.parties import Card, Payment
from simulator.reference import DECLINES, Decline

#: ISO 8583 response codes the networks return with each decline.
_NETWORK_DECLINE_CODES = {
    "insufficient_funds": "51",
    "do_not_honor": "05",
    "generic_decline": "05",
    "expired_card": "54",
    "lost_card": "41",
    "stolen_card": "43",
    "incorrect_cvc": "N7",
    "card_velocity_exceeded": "61",
    "processing_error": "96",
}
_ADVICE = {
    "insufficient_funds": "try_again_later",
    "card_velocity_exceeded": "try_again_later",
    "processing_error": "try_again_later",
    "expired_card": "confirm_card_data",
    "incorrect_cvc": "confirm_card_data",
    "lost_card": "do_not_try_again",
    "stolen_card": "do_not_try_again",
    "fraudulent": "do_not_try_again",
}


def timestamp(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return int(moment.timestamp())


def suffix(object_id: str) -> str:
    return object_id.split("_", 1)[1]


def billing_details(payment: Payment) -> dict:
    """``billing_details`` of a charge or payment method: the customer's name, e-mail, country."""
    customer = payment.customer
    return {
        "address": {
            "city": None,
            "country": customer.country if customer else payment.card.country,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": customer.email if customer else None,
        "name": customer.name if customer else None,
        "phone": None,
    }


def card_details(card: Card, *, cvc_check: str | None = "pass") -> dict:
    """The ``card`` hash shared by payment methods and charges."""
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": cvc_check,
        },
        "country": card.country,
        "display_brand": card.brand,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "wallet": None,
    }


def payment_method_object(payment: Payment) -> dict:
    """The ``payment_method`` object (card) embedded in ``last_payment_error``."""
    card = payment.card
    return {
        "id": card.payment_method,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": billing_details(payment),
        "card": {
            **card_details(card),
            "generated_from": None,
            "three_d_secure_usage": {"supported": True},
        },
        "created": timestamp(payment.created),
        "customer": payment.customer.id if payment.customer else None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def last_payment_error(payment: Payment, decline: Decline) -> dict:
    """``last_payment_error`` of a PaymentIntent whose charge was declined."""
    return {
        "charge": payment.charge,
        "code": decline.code,
        "decline_code": decline.decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{decline.code.replace('_', '-')}",
        "message": decline.message,
        "payment_method": payment_method_object(payment),
        "type": "card_error",
    }


def payment_intent_object(
    payment: Payment,
    *,
    status: str = "succeeded",
    decline: str | None = None,
    capture_method: str = "automatic_async",
    canceled_at: datetime | None = None,
    cancellation_reason: str | None = None,
) -> dict:
    """A PaymentIntent in ``status`` (``requires_payment_method``, ``processing``,
    ``requires_capture``, ``succeeded``, ``canceled``); ``decline`` (a decline code) fills
    ``last_payment_error`` as after a failed confirmation."""
    charged = decline is not None or status in ("processing", "requires_capture", "succeeded")
    method = payment.payment_method_type
    options = (
        {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        }
        if method == "card"
        else {method: {}}
    )
    return {
        "id": payment.payment_intent,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_capturable": payment.amount if status == "requires_capture" else 0,
        "amount_details": {"tip": {}},
        "amount_received": payment.amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": timestamp(canceled_at),
        "cancellation_reason": cancellation_reason,
        "capture_method": capture_method,
        "client_secret": f"{payment.payment_intent}_secret_{suffix(payment.charge)}",
        "confirmation_method": "automatic",
        "created": timestamp(payment.created),
        "currency": payment.currency,
        "customer": payment.customer.id if payment.customer else None,
        "description": None,
        "invoice": None,
        "last_payment_error": last_payment_error(payment, DECLINES[decline]) if decline else None,
        "latest_charge": payment.charge if charged else None,
        "livemode": False,
        "metadata": dict(payment.metadata),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment.card.payment_method if charged and not decline else None,
        "payment_method_configuration_details": None,
        "payment_method_options": options,
        "payment_method_types": [method],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def outcome(decline: str | None, risk_score: int) -> dict:
    """A charge's ``outcome``: authorized, declined by the issuer, or blocked by Radar."""
    risk_level = "normal" if risk_score < 65 else "elevated" if risk_score < 75 else "highest"
    result: dict[str, Any] = {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": risk_level,
        "risk_score": risk_score,
        "seller_message": "Payment complete.",
        "type": "authorized",
    }
    if decline is None:
        return result
    info = DECLINES[decline]
    result.update(
        advice_code=_ADVICE.get(decline),
        network_status=info.network_status,
        type=info.outcome_type,
        reason=decline,
    )
    if info.outcome_type == "blocked":
        result.update(
            reason="highest_risk_level",
            risk_level="highest",
            risk_score=max(risk_score, 85),
            seller_message="Stripe blocked this payment as too risky.",
        )
        return result
    result["network_decline_code"] = _NETWORK_DECLINE_CODES.get(decline)
    result["seller_message"] = (
        "The bank did not return any further details with this decline."
        if decline == "generic_decline"
        else f"The bank returned the decline code `{decline}`."
    )
    return result


def payment_method_details(payment: Payment, *, cvc_check: str | None = "pass") -> dict:
    """A charge's ``payment_method_details``: a card, or a SEPA / US bank account debit."""
    method, card = payment.payment_method_type, payment.card
    if method == "sepa_debit":
        return {
            "sepa_debit": {
                "bank_code": "37040044",
                "branch_code": None,
                "country": card.country,
                "fingerprint": card.fingerprint,
                "last4": card.last4,
                "mandate": f"mandate_{suffix(payment.charge)}",
            },
            "type": method,
        }
    if method == "us_bank_account":
        return {
            "type": method,
            "us_bank_account": {
                "account_holder_type": "individual",
                "account_type": "checking",
                "bank_name": "STRIPE TEST BANK",
                "fingerprint": card.fingerprint,
                "last4": card.last4,
                "routing_number": "110000000",
            },
        }
    details = card_details(card, cvc_check=cvc_check)
    details.pop("display_brand")
    details.update(
        amount_authorized=payment.amount,
        extended_authorization={"status": "disabled"},
        incremental_authorization={"status": "unavailable"},
        installments=None,
        mandate=None,
        multicapture={"status": "unavailable"},
        network=card.brand,
        network_token={"used": False},
        overcapture={"status": "unavailable"},
        three_d_secure=None,
    )
    return {"card": details, "type": "card"}


def charge_object(
    payment: Payment,
    *,
    status: str = "succeeded",
    decline: str | None = None,
    captured: bool = True,
    amount_refunded: int = 0,
    disputed: bool = False,
    risk_score: int = 20,
) -> dict:
    """A Charge in ``status`` (``succeeded``, ``pending``, ``failed``); ``decline`` (a decline
    code) sets ``failure_code``/``failure_message`` and a declined ``outcome``."""
    paid = status == "succeeded"
    info = DECLINES[decline] if decline else None
    cvc = "fail" if decline == "incorrect_cvc" else "pass"
    return {
        "id": payment.charge,
        "object": "charge",
        "amount": payment.amount,
        "amount_captured": payment.amount if paid and captured else 0,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": f"txn_{suffix(payment.charge)}" if paid else None,
        "billing_details": billing_details(payment),
        "calculated_statement_descriptor": payment.merchant.statement_descriptor,
        "captured": captured and paid,
        "created": timestamp(payment.created),
        "currency": payment.currency,
        "customer": payment.customer.id if payment.customer else None,
        "description": None,
        "destination": None,
        "dispute": None,
        "disputed": disputed,
        "failure_balance_transaction": None,
        "failure_code": info.code if info else None,
        "failure_message": info.message if info else None,
        "fraud_details": {"stripe_report": "fraudulent"} if decline == "fraudulent" else {},
        "invoice": None,
        "livemode": False,
        "metadata": dict(payment.metadata),
        "on_behalf_of": None,
        "outcome": outcome(decline, risk_score),
        "paid": paid,
        "payment_intent": payment.payment_intent,
        "payment_method": payment.card.payment_method,
        "payment_method_details": payment_method_details(payment, cvc_check=cvc),
        "radar_options": {},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{suffix(payment.charge)}",
        "refunded": bool(amount_refunded) and amount_refunded == payment.amount,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
