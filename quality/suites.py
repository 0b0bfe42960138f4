"""Great Expectations suites as code: batch contracts, one per table plus the silver batch's own.

``bronze_webhook_events``, ``silver_payment_events``, ``gold_payment_scores``,
``gold_merchant_daily`` check the rows a stage is about to promote, and ``silver_batch`` checks
one silver batch as a whole (``quality.batch.silver_batch_summary``: one row of counts).

Only what is about the batch lives here — volume, uniqueness, a schema change, the accounting
identity, the quarantine share, the score distribution. What can be said of one row (types,
amounts, currency, event time) is a row rule (``transforms.rules``) or the row contract
(``quality.contracts``): a row that fails it is quarantined and the batch goes on; a failed suite
holds the whole batch (``docs/architecture.md``, "Gate policy").

Thresholds that depend on settings are suite parameters, filled per validation from
``GateParams``, so a suite is built once per process. Great Expectations is imported inside the
builders only (it costs seconds): importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite


@dataclass(frozen=True)
class GateParams:
    """Run-time thresholds of the suites."""

    min_rows: int = 1  # volume: a batch handed to a gate is never empty
    max_rows: int = 5_000_000  # volume: more than this in one batch means a runaway reader
    max_quarantine_share: float = 0.5  # silver batch: above it, something systematic broke

    def suite_parameters(self) -> dict[str, Any]:
        """The ``$PARAMETER`` values of every suite."""
        return {
            "min_rows": self.min_rows,
            "max_rows": self.max_rows,
            "max_quarantine_share": self.max_quarantine_share,
        }


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _volume(gxe: Any) -> Any:
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=_param("min_rows"), max_value=_param("max_rows")
    )


def bronze_webhook_events(gxe: Any) -> list[Any]:
    """A sane volume, one row per delivery (a second writer landing the same messages fails)."""
    return [_volume(gxe), gxe.ExpectColumnValuesToBeUnique(column="delivery_id")]


def silver_payment_events(gxe: Any) -> list[Any]:
    """A sane volume, one row per event id."""
    return [_volume(gxe), gxe.ExpectColumnValuesToBeUnique(column="event_id")]


def silver_batch(gxe: Any) -> list[Any]:
    """The batch as a whole: every bronze row accounted for, a quarantine share below the
    threshold (null for batches too small to judge), and the schemas the code expects."""
    return [
        gxe.ExpectColumnValuesToBeBetween(column="unaccounted_rows", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(
            column="quarantine_share", min_value=0.0, max_value=_param("max_quarantine_share")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="bronze_schema_change", value_set=[""]),
        gxe.ExpectColumnValuesToBeInSet(column="events_schema_change", value_set=[""]),
    ]


_SCORES = (
    ("fraud_score", "fraud_model_version"),
    ("retry_success_probability", "retry_model_version"),
    ("churn_score", "churn_model_version"),
)


def gold_payment_scores(gxe: Any) -> list[Any]:
    """One score row per event; each score's distribution within [0, 1] (nulls, where no model
    is registered, are skipped); a score names its model version. Scores are the models'
    output, not input rows: a batch out of range means a broken model, so the batch holds."""
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
    """One row per merchant, day and currency."""
    keys = ["merchant_id", "day", "currency"]
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=keys)]


SUITES: dict[str, Callable[[Any], list[Any]]] = {
    "bronze_webhook_events": bronze_webhook_events,
    "silver_payment_events": silver_payment_events,
    "silver_batch": silver_batch,
    "gold_payment_scores": gold_payment_scores,
    "gold_merchant_daily": gold_merchant_daily,
}
#: Columns each suite reads: only these are converted to pandas for a gate.
SUITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze_webhook_events": ("delivery_id",),
    "silver_payment_events": ("event_id",),
    "silver_batch": (
        "unaccounted_rows",
        "quarantine_share",
        "bronze_schema_change",
        "events_schema_change",
    ),
    "gold_payment_scores": ("event_id", *(c for pair in _SCORES for c in pair)),
    "gold_merchant_daily": ("merchant_id", "day", "currency"),
}


def build_suite(name: str) -> ExpectationSuite:
    """The named suite as a Great Expectations ``ExpectationSuite`` (imports GE)."""
    # lazy: `import great_expectations` takes 5.4 s (python -X importtime)
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; one of {sorted(SUITES)}")
    return gx.ExpectationSuite(name=name, expectations=SUITES[name](gxe))
