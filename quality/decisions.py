"""An operator's decision on a batch a gate holds back (the gate policy, ``docs/architecture.md``).

A failed batch gate promotes nothing; the batch waits until an operator accepts it as it is or
quarantines it whole, saying who decides and why. The decision is a value the silver stage
applies and records in the snapshot summary of the commits it makes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Snapshot summary key that records a decision on the commits it made.
SUMMARY_DECISION = "lakehouse.held-batch-decision"


@dataclass(frozen=True)
class HeldBatchDecision:
    """Accept the held batch, or quarantine it whole; who decides and why are required."""

    action: str  # "accept" | "quarantine"
    by: str
    reason: str

    def __post_init__(self) -> None:
        if self.action not in ("accept", "quarantine"):
            raise ValueError(f"decision must be accept or quarantine, not {self.action!r}")
        if not self.by.strip() or not self.reason.strip():
            raise ValueError("a decision on a held batch needs who (by) and why (reason)")

    @property
    def note(self) -> str:
        return f"{self.action} by {self.by}: {self.reason}"

    @property
    def summary(self) -> dict[str, str]:
        """What the commits of the decided batch record in their snapshot summary."""
        return {SUMMARY_DECISION: self.note}
