"""A held batch and an operator's decision on it (the gate policy, ``docs/architecture.md``).

A failed batch gate promotes nothing; the stage records the hold (``HeldBatch``: which gates,
since when, how many rows, where the batch starts) so that ``lakehouse status`` can show it from
another process, and the batch waits until an operator decides: accept it as it is, quarantine it
whole, or split it — promote the rows that pass and quarantine the rows the failed expectations
flagged — saying who decides and why. The decision is a value the silver stage applies and
records in the snapshot summary of the commits it makes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import polars as pl

#: Snapshot summary key that records a decision on the commits it made.
SUMMARY_DECISION = "lakehouse.held-batch-decision"
#: Snapshot summary key of an (empty) commit recording that a batch is held.
SUMMARY_HELD = "lakehouse.held-batch"
ACTIONS = ("accept", "quarantine", "split")


@dataclass(frozen=True)
class HeldBatchDecision:
    """Accept, quarantine whole, or split the held batch; who decides and why are required."""

    action: str  # one of ACTIONS
    by: str
    reason: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"decision must be one of {ACTIONS}, not {self.action!r}")
        if not self.by.strip() or not self.reason.strip():
            raise ValueError("a decision on a held batch needs who (by) and why (reason)")

    @property
    def note(self) -> str:
        return f"{self.action} by {self.by}: {self.reason}"

    @property
    def summary(self) -> dict[str, str]:
        """What the commits of the decided batch record in their snapshot summary."""
        return {SUMMARY_DECISION: self.note}


@dataclass(frozen=True)
class HeldBatch:
    """A batch a gate holds: the failed gates and expectations, since when, its bronze rows,
    and the source snapshot it starts after (the layer's watermark when it was held)."""

    gates: tuple[str, ...]
    failed: tuple[str, ...]
    since: str  # ISO 8601, UTC
    rows: int
    after_snapshot: str  # the watermark, as text ("" when the layer has read nothing yet)

    @classmethod
    def now(
        cls, gates: list[str], failed: list[str], rows: int, after: int | None, at: datetime
    ) -> HeldBatch:
        return cls(
            tuple(gates), tuple(failed), at.isoformat(), rows, "" if after is None else str(after)
        )

    def holds_at(self, watermark: int | None) -> bool:
        """Whether this hold is still the layer's state (its watermark has not moved on)."""
        return self.after_snapshot == ("" if watermark is None else str(watermark))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeldBatch:
        raw = json.loads(text)
        return cls(**{**raw, "gates": tuple(raw["gates"]), "failed": tuple(raw["failed"])})

    @property
    def release_commands(self) -> list[str]:
        """The commands an operator runs to release it."""
        base = "lakehouse run release-held-batch"
        who = "--by YOU --reason '…'"
        return [f"{base} --{action} {who}" for action in ("split", "accept", "quarantine")]


#: Which frame's rows a suite's flagged row positions refer to (the others judge the batch).
_ROWS_OF = {"bronze_webhook_events": "deliveries", "silver_payment_events": "events"}


def rejected_deliveries(
    decision: HeldBatchDecision,
    failed: Sequence[Any],
    deliveries: pl.DataFrame,
    events: pl.DataFrame,
) -> pl.DataFrame:
    """The deliveries of ``events`` an operator's decision quarantines (``GATE_REJECTED``), with
    their ``error_detail``: none for ``accept``; every one for ``quarantine``; for ``split``,
    those whose bronze row or event a failed expectation flagged (``failed``: ``GateResult``s
    asked ``with_rows``), each with the expectations that flagged it.

    Only deliveries that became events are rejected: rows the row rules quarantined keep their
    code, not-modelled and duplicate rows stay counted as such (the accounting identity holds)."""
    empty = pl.DataFrame(schema={"delivery_id": pl.String, "error_detail": pl.String})
    if decision.action == "accept" or events.is_empty():
        return empty
    if decision.action == "quarantine":
        names = "; ".join(f"{r.suite}: {', '.join(r.failed_expectations)}" for r in failed)
        detail = f"gate failed ({names}); {decision.note}"
        return events.select("delivery_id", pl.lit(detail).alias("error_detail"))
    frames = {"deliveries": deliveries, "events": events}
    flagged = [
        frames[_ROWS_OF[r.suite]][list(f.rows), "delivery_id"]
        .to_frame()
        .with_columns(pl.lit(f"{r.suite}: {f.name}").alias("expectation"))
        for r in failed
        if r.suite in _ROWS_OF
        for f in r.failed
        if f.rows
    ]
    if not flagged:
        return empty
    by_delivery = (
        pl.concat(flagged)
        .unique(maintain_order=True)
        .group_by("delivery_id", maintain_order=True)
        .agg(pl.col("expectation").str.join("; "))
    )
    detail = pl.format("gate failed ({}); {}", pl.col("expectation"), pl.lit(decision.note))
    return by_delivery.join(events.select("delivery_id"), on="delivery_id", how="semi").select(
        "delivery_id", detail.alias("error_detail")
    )
