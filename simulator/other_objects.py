"""Refund, Dispute, Customer and Invoice objects (``data.object``) from explicit arguments."""

from __future__ import annotations

from datetime import datetime, timedelta

from simulator.parties import Customer, Payment
from simulator.payment_objects import suffix, timestamp
from simulator.reference import NETWORK_REASON_CODES, Merchant


def refund_object(
    payment: Payment,
    *,
    refund_id: str,
    created: datetime,
    amount: int | None = None,
    reason: str | None = "requested_by_customer",
    status: str = "succeeded",
) -> dict:
    """A Refund (``re_…``) of ``amount`` (default: all) of the payment's charge. Its metadata
    carries the merchant's ``merchant_id`` (the platform creates it) for non-Connect merchants."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": payment.amount if amount is None else amount,
        "balance_transaction": f"txn_{suffix(refund_id)}" if status == "succeeded" else None,
        "charge": payment.charge,
        "created": timestamp(created),
        "currency": payment.currency,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": dict(payment.merchant.metadata),
        "payment_intent": payment.payment_intent,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "product_description",
    "receipt",
    "refund_policy",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
)


def dispute_object(
    payment: Payment,
    *,
    dispute_id: str,
    created: datetime,
    reason: str = "fraudulent",
    status: str = "needs_response",
) -> dict:
    """A Dispute (``dp_…``) of the payment's charge. ``status`` ``needs_response`` when opened;
    ``won`` or ``lost`` when closed (then with evidence submitted). Metadata is empty, as Stripe
    creates disputes."""
    closed = status in ("won", "lost")
    network_code = NETWORK_REASON_CODES.get(payment.card.brand, {}).get(reason)
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": payment.amount,
        "balance_transactions": [],
        "charge": payment.charge,
        "created": timestamp(created),
        "currency": payment.currency,
        "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
        "evidence_details": {
            "due_by": timestamp(created + timedelta(days=7)),
            "has_evidence": closed,
            "past_due": False,
            "submission_count": int(closed),
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "network_reason_code": network_code,
        "payment_intent": payment.payment_intent,
        "payment_method_details": {
            "card": {
                "brand": payment.card.brand,
                "case_type": "chargeback",
                "network_reason_code": network_code,
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }


def customer_object(customer: Customer, created: datetime, merchant: Merchant) -> dict:
    """A Customer as ``customer.created`` carries it."""
    return {
        "id": customer.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": timestamp(created),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": customer.email,
        "invoice_prefix": suffix(customer.id)[:8].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": dict(merchant.metadata),
        "name": customer.name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def invoice_object(payment: Payment, invoice_id: str, subscription_id: str) -> dict:
    """A paid subscription Invoice (``in_…``) settled by the payment."""
    start = timestamp(payment.created - timedelta(days=30))
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": payment.merchant.country,
        "account_name": payment.merchant.name,
        "amount_due": payment.amount,
        "amount_paid": payment.amount,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "charge": payment.charge,
        "collection_method": "charge_automatically",
        "created": timestamp(payment.created),
        "currency": payment.currency,
        "customer": payment.customer.id if payment.customer else None,
        "customer_email": payment.customer.email if payment.customer else None,
        "lines": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": dict(payment.merchant.metadata),
        "number": f"{suffix(invoice_id)[:8].upper()}-0001",
        "paid": True,
        "payment_intent": payment.payment_intent,
        "period_end": timestamp(payment.created),
        "period_start": start,
        "status": "paid",
        "subscription": subscription_id,
        "subtotal": payment.amount,
        "total": payment.amount,
    }


def generic_object(event_type: str, object_id: str, created: datetime) -> dict:
    """A minimal object for event types the simulator does not model (``account.updated``)."""
    return {
        "id": object_id,
        "object": event_type.rsplit(".", 1)[0],
        "created": timestamp(created),
        "livemode": False,
        "metadata": {},
    }
