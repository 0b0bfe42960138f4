"""The ``microbatch`` flow: broker → bronze → silver → gold, in a warm loop.

Idempotent and resumable: every stage reads from a position its own table recorded (Kafka offsets
in bronze, source-snapshot watermarks in silver and gold), commits atomically, and skips work it
already did, so a run killed at any point is finished by the next one. One flow run is a warm loop
for a bounded time (imports, catalog and consumer set up once), not one flow run per batch; in
it, bronze loads the next batch while silver promotes the last one and gold catches up, each
stage a task run of the flow run (see ``flows.loop.run_loop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import stages
from flows.context import publish_data_docs, warm_lakehouse
from flows.loop import GOLD_EVERY_SECONDS, run_loop
from flows.report import StageReport

Stage = Callable[..., StageReport]


def _as_task(fn: Stage, retries: int = 0):
    return task(
        fn,
        name=fn.__name__.replace("_", "-"),
        cache_policy=NO_CACHE,
        retries=retries,
        retry_delay_seconds=2,
    )


_TASKS = {
    stages.load_bronze: _as_task(stages.load_bronze, retries=2),
    stages.promote_silver: _as_task(stages.promote_silver),
    stages.score_gold: _as_task(stages.score_gold),
    stages.rebuild_merchant_daily: _as_task(stages.rebuild_merchant_daily),
}


def _call_as_task(fn: Stage, *args: Any) -> StageReport:
    return _TASKS[fn](*args)


@flow(name="microbatch", log_prints=False)
def microbatch(
    max_records: int = 200_000,
    max_seconds: float = 5.0,
    until_idle: bool = True,
    run_for_seconds: float = 50.0,
    gold_every_seconds: float = GOLD_EVERY_SECONDS,
) -> dict[str, Any]:
    """Drain the webhook topics through bronze, silver and gold; publish the run's figures."""
    logger = get_run_logger()
    lh = warm_lakehouse()
    totals = run_loop(
        lh,
        max_records=max_records,
        max_seconds=max_seconds,
        until_idle=until_idle,
        run_for_seconds=run_for_seconds,
        gold_every_seconds=gold_every_seconds,
        call=_call_as_task,
        log=logger.info,
    )
    docs = publish_data_docs(totals, lh)
    if docs:
        logger.info("Data Docs: %s", docs)
    create_markdown_artifact(
        key="microbatch-run",
        markdown=totals.markdown(),
        description="rows per layer, quarantine by code, gates, lag",
    )
    return totals.as_dict()
