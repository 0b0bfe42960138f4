"""``release-held-batch``: an operator's decision on a batch a silver gate holds back.

``accept`` promotes the held batch as it is; ``quarantine`` moves its events to
``silver.quarantine`` with code ``GATE_REJECTED``; ``split`` promotes the rows that pass and
quarantines (``GATE_REJECTED``, the failing expectation in the detail) the rows the failed
expectations flagged. Either way the decision (who, why) is recorded in the snapshot summary of
the commits, and the stream moves on. Idempotent: with no held batch, the silver stage simply
promotes what passes its gates.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.context import Lakehouse
from flows.stages import promote_silver
from quality.decisions import HeldBatchDecision


def run_release(action: str, by: str, reason: str) -> dict[str, Any]:
    """Apply the decision to the batch silver would promote next."""
    decision = HeldBatchDecision(action=action, by=by, reason=reason)
    report = promote_silver(Lakehouse(), decision=decision)
    return {"decision": decision.note, **report.as_dict()}


@flow(name="release-held-batch")
def release_held_batch(action: str, by: str, reason: str) -> dict[str, Any]:
    """Accept, quarantine or split the batch a failed silver gate holds; records who and why."""
    result = run_release(action, by, reason)
    get_run_logger().info("held batch: %s", result)
    return result
