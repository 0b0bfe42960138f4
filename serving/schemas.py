"""What the scoring API takes and answers: one pydantic model per role (what a caller sends, what
it gets back, an error), each with an example for the OpenAPI document.

Money is in minor units with its currency, as the provider sends it (``amount_minor`` 1999 USD is
19.99 USD); a currency must be one the provider accepts, in any case. Times are timezone-aware
(ISO 8601 with an offset); ``created_at`` defaults to the time of the request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from transforms.money import STRIPE

#: The error codes of a 422 besides ``invalid_request`` (a value the schema refuses).
INVALID_CURRENCY = "invalid_currency"
INVALID_AMOUNT_TOO_LARGE = "invalid_amount_too_large"
CUSTOMER_MISMATCH = "customer_mismatch"
_LIMITS = STRIPE.limits()


def _currency(value: str) -> str:
    code = value.upper()
    if code not in STRIPE.exponents:
        raise PydanticCustomError(
            INVALID_CURRENCY,
            "{currency} is not a currency the provider accepts",
            {"currency": value},
        )
    return code


def _upper(value: str | None) -> str | None:
    return value.upper() if value is not None else None


Currency = Annotated[
    str, Field(min_length=3, max_length=3, examples=["USD"]), AfterValidator(_currency)
]
Country = Annotated[
    str, Field(pattern="^[A-Za-z]{2}$", description="ISO 3166 alpha-2"), AfterValidator(_upper)
]
Id = Annotated[str, Field(min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Card(_Strict):
    """The card of the payment, as the provider reports it."""

    brand: Annotated[str, AfterValidator(str.lower)] | None = Field(None, examples=["visa"])
    last4: str | None = Field(None, pattern="^[0-9]{4}$", examples=["4242"])
    country: Country | None = Field(None, description="issuing country", examples=["US"])


class Payment(_Strict):
    """A payment as the features see it: who, how much, which card, which order, when."""

    merchant_id: Id = Field(examples=["acct_1Merchant"])
    customer_id: Id | None = Field(None, description="unknown customers have no history")
    amount_minor: int = Field(ge=0, description="in the currency's minor units")
    currency: Currency
    card: Card | None = None
    customer_country: Country | None = Field(None, description="the customer's country")
    order_id: str | None = Field(
        None, pattern=r'^[^"\\]{1,255}$', description="the merchant's order (retries share it)"
    )
    charge_id: Id | None = Field(None, description="the provider's charge, when there is one")
    event_id: Id | None = Field(None, description="the provider's event id, echoed back")
    created_at: AwareDatetime | None = Field(None, description="default: now")

    @model_validator(mode="after")
    def _within_limit(self) -> Payment:
        """The provider's largest amount for the currency (``invalid_amount_too_large``)."""
        limit = _LIMITS[self.currency]
        if self.amount_minor > limit:
            raise PydanticCustomError(
                INVALID_AMOUNT_TOO_LARGE,
                "amount_minor {amount} is above the provider's limit {limit} for {currency}",
                {"amount": self.amount_minor, "limit": limit, "currency": self.currency},
            )
        return self


_PAYMENT_EXAMPLE = {
    "merchant_id": "acct_1Merchant",
    "customer_id": "cus_Q1xMpl3",
    "amount_minor": 4999,
    "currency": "USD",
    "card": {"brand": "visa", "last4": "4242", "country": "US"},
    "customer_country": "US",
    "order_id": "ord_000123",
}


class FraudRequest(Payment):
    """A payment about to be confirmed."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PAYMENT_EXAMPLE]})


class FailedPayment(Payment):
    """A payment that was declined."""

    decline_code: str | None = Field(None, examples=["insufficient_funds"])

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_PAYMENT_EXAMPLE, "decline_code": "insufficient_funds"}]}
    )


class RecoveryRequest(FailedPayment):
    """A declined payment to recover."""

    attempt_cost_minor: int = Field(
        0, ge=0, description="what one attempt costs, in the payment's minor units"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_PAYMENT_EXAMPLE, "decline_code": "insufficient_funds", "attempt_cost_minor": 10}
            ]
        }
    )


class ChurnRequest(_Strict):
    """A customer, and the payment at hand if there is one (its amount and outcome are features;
    with it the score equals gold's for that payment event)."""

    customer_id: Id
    customer_country: Country | None = None
    created_at: AwareDatetime | None = Field(None, description="default: now")
    payment: Payment | None = None
    payment_failed: bool = Field(False, description="the payment at hand was declined")

    @model_validator(mode="after")
    def _same_customer(self) -> ChurnRequest:
        paying = self.payment.customer_id if self.payment is not None else None
        if paying is not None and paying != self.customer_id:
            raise PydanticCustomError(
                CUSTOMER_MISMATCH, "payment.customer_id is not customer_id", {}
            )
        return self

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"customer_id": "cus_Q1xMpl3", "customer_country": "US"},
                {"customer_id": "cus_Q1xMpl3", "payment": _PAYMENT_EXAMPLE},
            ]
        }
    )


# --- answers -----------------------------------------------------------------------------------
class ModelRef(BaseModel):
    """The registered model version that answered."""

    name: str = Field(examples=["payments-fraud"])
    version: str = Field(examples=["3"])


class _Answer(BaseModel):
    event_id: str | None = Field(None, description="the request's event id")
    created_at: AwareDatetime = Field(description="the event time the features were taken at")


class FraudScore(_Answer):
    fraud_score: float = Field(ge=0, le=1, description="probability of a fraudulent dispute")
    model: ModelRef


class DelayOption(BaseModel):
    delay_hours: int = Field(description="hours after the failure", examples=[24])
    success_probability: float = Field(ge=0, le=1, examples=[0.41])


class RetryStrategy(_Answer):
    recommended_delay_hours: int = Field(examples=[24])
    success_probability: float = Field(ge=0, le=1, description="at the recommended delay")
    candidates: list[DelayOption] = Field(description="every candidate delay, shortest first")
    model: ModelRef


class ChurnPrediction(_Answer):
    churn_score: float = Field(ge=0, le=1, description="no successful payment in 30 days")
    model: ModelRef


class PlanStep(BaseModel):
    action: Literal["retry", "new_card", "stop"]
    delay_hours: float = Field(description="hours after the failure")
    at: AwareDatetime = Field(description="when: the failure's time plus delay_hours")
    success_probability: float = Field(ge=0, le=1)
    reach_probability: float = Field(ge=0, le=1, description="every earlier step failed")
    expected_recovered_minor: float = Field(ge=0, description="reach × success × amount")


class RecoveryPlan(_Answer):
    steps: list[PlanStep] = Field(description="in order; the last one is stop")
    expected_recovered_minor: float = Field(ge=0, description="the plan's total")
    net_value_minor: float = Field(description="expected recovered value less attempt costs")
    currency: str
    churn_score: float | None = Field(None, ge=0, le=1, description="null without a customer")
    new_card_probability: float = Field(ge=0, le=1)
    models: list[ModelRef] = Field(description="the retry and churn models")


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable", examples=["invalid_currency"])
    message: str = Field(description="for people")
    field: str | None = Field(None, description="where in the request", examples=["currency"])


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body of the scoring API."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    dependency: str | None = Field(None, description="what is missing: models, silver")
    detail: str | None = None
    models: list[ModelRef] = Field(default_factory=list, description="the champions served")
    silver_snapshot_id: int | None = Field(None, description="what the online features read")
    history_events: int = Field(0, description="silver events the online features hold")
    refreshed_at: AwareDatetime | None = Field(None, description="the last refresh")
