"""The micro-batch loop without Prefect: batches until idle or for a bounded time, in a warm
process (imports, catalog, consumer group membership and Great Expectations set up once).

``flows.microbatch`` wraps it as a Prefect flow; ``lakehouse run microbatch`` calls it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flows import stages
from flows.report import RunTotals


def run_loop(
    lh: stages.Lakehouse,
    *,
    max_records: int,
    max_seconds: float,
    until_idle: bool,
    run_for_seconds: float,
    call: Callable[..., stages.StageReport] = lambda fn, *a: fn(*a),
    log: Callable[[str], None] = print,
) -> RunTotals:
    """Batches until idle (``until_idle``) or until ``run_for_seconds`` have passed."""
    totals = RunTotals()
    deadline = time.monotonic() + run_for_seconds
    while True:
        bronze = call(stages.load_bronze, lh, max_records, max_seconds)
        silver = call(stages.promote_silver, lh)
        scores = call(stages.score_gold, lh)
        daily = call(stages.rebuild_merchant_daily, lh)
        batch = [bronze, silver, scores, daily]
        totals.add(batch)
        log(totals.batch_line(batch))
        idle = all(r.rows_in == 0 for r in batch) and not any(bronze.lag.values())
        if (until_idle and idle) or time.monotonic() >= deadline:
            return totals


def publish_data_docs(totals: RunTotals, lh: stages.Lakehouse) -> str | None:
    """Write the run's gate results to Data Docs (bounded history); return the index path."""
    from quality.gates import build_data_docs

    results = [r for r in totals.gate_results.values() if r is not None]
    return str(build_data_docs(results, lh.settings.data_docs_dir)) if results else None


_LAKEHOUSE: stages.Lakehouse | None = None


def warm_lakehouse() -> stages.Lakehouse:
    """One context per process: a warm loop pays imports and setup once."""
    global _LAKEHOUSE
    if _LAKEHOUSE is None:
        from quality.gates import warm_up

        warm_up()  # Great Expectations' import and suites: once per process, not per batch
        _LAKEHOUSE = stages.Lakehouse()
    else:
        _LAKEHOUSE.refresh()
    return _LAKEHOUSE
