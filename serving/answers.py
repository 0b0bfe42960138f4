"""Each endpoint's answer as a plain function of what is served (``serving.state.Served``) and the
request: the event (``serving.events``), its online features (``ml.online``), the champions'
predictions (``ml.predict``) and, for a recovery, the plan (``ml.recovery``). No HTTP here:
``serving.app`` maps ``ScoringError`` to a status and a JSON body.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ml import predict, recovery
from ml.names import CHURN, FRAUD, RETRY
from ml.online import Features, OnlineEvent
from ml.registry import Champion
from serving import events
from serving.schemas import (
    ChurnPrediction,
    ChurnRequest,
    DelayOption,
    FailedPayment,
    FraudRequest,
    FraudScore,
    ModelRef,
    PlanStep,
    RecoveryPlan,
    RecoveryRequest,
    RetryStrategy,
)
from serving.state import Served

MODEL_UNAVAILABLE = "model_unavailable"
EVENT_TIME_OUT_OF_RANGE = "event_time_out_of_range"


class ScoringError(Exception):
    """A request the API cannot answer: an HTTP status, a code and a sentence."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def fraud(served: Served, request: FraudRequest, max_future: timedelta) -> FraudScore:
    champion = _champion(served, FRAUD)
    event = events.fraud_event(request)
    feats = features(served, event, max_future)
    return FraudScore(
        event_id=request.event_id,
        created_at=event["provider_created_at"],
        fraud_score=predict.probability(champion, feats),
        model=_ref(champion),
    )


def retry(served: Served, request: FailedPayment, max_future: timedelta) -> RetryStrategy:
    champion = _champion(served, RETRY)
    event = events.failed_event(request)
    grid = predict.retry_grid(champion, features(served, event, max_future))
    return RetryStrategy(
        event_id=request.event_id,
        created_at=event["provider_created_at"],
        recommended_delay_hours=grid.delays_hours[grid.best],
        success_probability=grid.probabilities[grid.best],
        candidates=[
            DelayOption(delay_hours=d, success_probability=p)
            for d, p in zip(grid.delays_hours, grid.probabilities, strict=True)
        ],
        model=_ref(champion),
    )


def churn(served: Served, request: ChurnRequest, max_future: timedelta) -> ChurnPrediction:
    champion = _champion(served, CHURN)
    event = events.churn_event(request)
    return ChurnPrediction(
        event_id=request.payment.event_id if request.payment else None,
        created_at=event["provider_created_at"],
        churn_score=predict.probability(champion, features(served, event, max_future)),
        model=_ref(champion),
    )


def recover(served: Served, request: RecoveryRequest, max_future: timedelta) -> RecoveryPlan:
    """The plan by expected recovered value (``ml.recovery.plan``): the retry model's grid, the
    churn model's risk and the customer's 30-day success share for a new card."""
    retry_model, churn_model = _champion(served, RETRY), _champion(served, CHURN)
    event = events.failed_event(request)
    feats = features(served, event, max_future)
    grid = predict.retry_grid(retry_model, feats)
    risk = predict.probability(churn_model, feats) if request.customer_id else None
    new_card = recovery.new_card_probability(risk, _success_share(feats))
    plan = recovery.plan(
        request.amount_minor,
        list(zip(grid.delays_hours, grid.probabilities, strict=True)),
        new_card,
        request.decline_code,
        request.attempt_cost_minor,
    )
    failed_at: datetime = event["provider_created_at"]
    return RecoveryPlan(
        event_id=request.event_id,
        created_at=failed_at,
        steps=[_step(s, failed_at) for s in plan.steps],
        expected_recovered_minor=plan.expected_recovered_minor,
        net_value_minor=plan.net_value_minor,
        currency=request.currency,
        churn_score=risk,
        new_card_probability=new_card,
        models=[_ref(retry_model), _ref(churn_model)],
    )


def features(served: Served, event: OnlineEvent, max_future: timedelta) -> Features:
    """The online features of ``event``, refused when its time is beyond what the held history
    answers exactly (older than ``covered_from``) or further ahead than ``max_future``."""
    created: datetime = event["provider_created_at"]  # type: ignore[assignment]
    if created > datetime.now(UTC) + max_future:
        raise ScoringError(
            422, EVENT_TIME_OUT_OF_RANGE, "created_at is in the future", "created_at"
        )
    if served.covered_from is not None and created < served.covered_from:
        raise ScoringError(
            422,
            EVENT_TIME_OUT_OF_RANGE,
            f"created_at is before {served.covered_from.isoformat()}: the online features hold "
            "the history of recent events only",
            "created_at",
        )
    return served.index.features(event)


def _success_share(feats: Features) -> float | None:
    attempts, successes = feats.get("c_attempts_30d"), feats.get("c_success_30d")
    return successes / attempts if attempts else None  # type: ignore[operator]


def _step(step: recovery.Step, failed_at: datetime) -> PlanStep:
    return PlanStep(
        action=step.action,
        delay_hours=step.delay_hours,
        at=failed_at + timedelta(hours=step.delay_hours),
        success_probability=step.success_probability,
        reach_probability=step.reach_probability,
        expected_recovered_minor=step.expected_recovered_minor,
    )


def _champion(served: Served, name: str) -> Champion:
    champion = served.champions.get(name)
    if champion is None:
        raise ScoringError(
            503,
            MODEL_UNAVAILABLE,
            f"{name} has no champion yet: train the models (lakehouse run train-models)",
        )
    return champion


def _ref(champion: Champion) -> ModelRef:
    return ModelRef(name=champion.name, version=champion.version)
