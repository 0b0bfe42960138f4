"""Great Expectations suites as code: one batch contract per table, named like the table.

``bronze_webhook_events``, ``silver_payment_events``, ``gold_payment_scores``,
``gold_merchant_daily``. Thresholds that depend on the run (volume bounds, freshness window) are
suite parameters, filled per validation from ``GateParams``, so a suite is built once per
process. Great Expectations is imported inside the builders only (it costs seconds): importing
this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from settings.names import ALL_TOPICS
from transforms.normalize import UNIFIED_TYPES

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite


@dataclass(frozen=True)
class GateParams:
    """Run-time thresholds of the suites."""

    min_rows: int = 1  # volume: a batch handed to a gate is never empty
    max_rows: int = 5_000_000  # volume: more than this in one batch means a runaway reader
    max_age_days: float = 30.0  # silver: provider_created_at not older than this …
    max_future: timedelta = timedelta(days=1)  # … and not further ahead than this
    # gold: refund and dispute rates within [0, max_rate]. Not 1: a day's refunds and disputes
    # often belong to payments of earlier days, so a quiet merchant-day can exceed 1 honestly.
    max_rate: float = 1_000.0
    now: datetime | None = None  # reference time of the freshness window (default: now)

    def suite_parameters(self) -> dict[str, Any]:
        """The ``$PARAMETER`` values of every suite."""
        now = self.now or datetime.now(UTC)
        return {
            "min_rows": self.min_rows,
            "max_rows": self.max_rows,
            "oldest_created": now - timedelta(days=self.max_age_days),
            "latest_created": now + self.max_future,
            "max_rate": self.max_rate,
        }


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _volume(gxe: Any) -> Any:
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=_param("min_rows"), max_value=_param("max_rows")
    )


def bronze_webhook_events(gxe: Any) -> list[Any]:
    """One row per delivery, from a known topic, with its payload."""
    return [
        _volume(gxe),
        gxe.ExpectColumnValuesToBeUnique(column="delivery_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="delivery_id"),
        gxe.ExpectColumnValuesToBeInSet(column="topic", value_set=list(ALL_TOPICS)),
        gxe.ExpectColumnValuesToNotBeNull(column="payload"),
    ]


def silver_payment_events(gxe: Any) -> list[Any]:
    """One row per event id; ISO currency; non-negative amount; known type; fresh."""
    return [
        _volume(gxe),
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="event_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
        gxe.ExpectColumnValuesToBeBetween(column="amount_minor", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(UNIFIED_TYPES)),
        gxe.ExpectColumnValuesToBeBetween(
            column="provider_created_at",
            min_value=_param("oldest_created"),
            max_value=_param("latest_created"),
        ),
    ]


_SCORES = (
    ("fraud_score", "fraud_model_version"),
    ("retry_success_probability", "retry_model_version"),
    ("churn_score", "churn_model_version"),
)


def gold_payment_scores(gxe: Any) -> list[Any]:
    """One score row per event; scores are probabilities; a score names its model version."""
    # lazy: `import great_expectations` takes 5.4 s (python -X importtime)
    from great_expectations.expectations.row_conditions import Column

    expectations = [gxe.ExpectColumnValuesToBeUnique(column="event_id")]
    for score, version in _SCORES:
        expectations += [
            gxe.ExpectColumnValuesToBeBetween(column=score, min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToNotBeNull(
                column=version, row_condition=Column(score).is_not_null()
            ),
        ]
    return expectations


def gold_merchant_daily(gxe: Any) -> list[Any]:
    """One row per merchant, day and currency; rates within [0, max_rate]."""
    keys = ["merchant_id", "day", "currency"]
    rates = [
        gxe.ExpectColumnValuesToBeBetween(column=rate, min_value=0.0, max_value=_param("max_rate"))
        for rate in ("refund_rate", "dispute_rate")
    ]
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=keys), *rates]


SUITES: dict[str, Callable[[Any], list[Any]]] = {
    "bronze_webhook_events": bronze_webhook_events,
    "silver_payment_events": silver_payment_events,
    "gold_payment_scores": gold_payment_scores,
    "gold_merchant_daily": gold_merchant_daily,
}
#: Columns each suite reads: only these are converted to pandas for a gate.
SUITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze_webhook_events": ("delivery_id", "topic", "payload"),
    "silver_payment_events": (
        "event_id",
        "currency",
        "amount_minor",
        "event_type",
        "provider_created_at",
    ),
    "gold_payment_scores": ("event_id", *(c for pair in _SCORES for c in pair)),
    "gold_merchant_daily": ("merchant_id", "day", "currency", "refund_rate", "dispute_rate"),
}


def build_suite(name: str) -> ExpectationSuite:
    """The named suite as a Great Expectations ``ExpectationSuite`` (imports GE)."""
    # lazy: `import great_expectations` takes 5.4 s (python -X importtime)
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; one of {sorted(SUITES)}")
    return gx.ExpectationSuite(name=name, expectations=SUITES[name](gxe))
