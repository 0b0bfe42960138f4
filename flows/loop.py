"""The micro-batch loop without Prefect: batches until idle or for a bounded time, in a warm
process (imports, catalog, consumer group membership and Great Expectations set up once).

``flows.microbatch`` wraps it as a Prefect flow; ``lakehouse run microbatch`` calls it directly.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from flows.report import RunTotals, StageReport

if TYPE_CHECKING:
    from flows.context import Lakehouse

Call = Callable[..., StageReport]
Lane = Callable[[], list[StageReport]]

#: Gold catches up with silver at most this often within a run (and always before it ends):
#: scoring reads a month of history and ``merchant_daily`` rebuilds whole days, so their cost
#: per pass hardly depends on how many new rows it covers (a 1,000,000-event drain: gold took
#: 19.6 s in passes every 10 s, 13.5 s every 20 s). Gold scores are analytic (Stripe has decided
#: by then), so trailing silver by seconds costs nothing.
GOLD_EVERY_SECONDS = 20.0


def run_loop(
    lh: Lakehouse,
    *,
    max_records: int,
    max_seconds: float,
    until_idle: bool,
    run_for_seconds: float,
    gold_every_seconds: float = GOLD_EVERY_SECONDS,
    pipelined: bool = True,
    call: Call = lambda fn, *a: fn(*a),
    log: Callable[[str], None] = print,
) -> RunTotals:
    """Batches until idle (``until_idle``) or until ``run_for_seconds`` have passed.

    Three lanes overlap (``pipelined``): bronze consumes and commits the next batch, this thread
    promotes the last one to silver, and gold catches up with silver at most every
    ``gold_every_seconds``. Consuming, Parquet writing, JSON decoding and feature building
    release the GIL, so the lanes share two cores. They meet only through the tables (each layer
    reads the one below from its own watermark), so the overlap changes no result; a run ends
    with gold caught up, and a stage that fails stops the loop once the lanes in flight have
    committed. ``call`` runs each stage (as a Prefect task in the flow); ``pipelined=False``
    runs the lanes one after another, to measure each stage's own cost.
    """
    # here, not at the top: `lakehouse --help` imports this module (for GOLD_EVERY_SECONDS) in
    # 0.17 s; `import flows.stages` (pyiceberg, Pandera, scikit-learn) takes 5.9 s
    from flows import stages

    totals = RunTotals()
    deadline = time.monotonic() + run_for_seconds
    sizes = _ramp(max_records)

    def bronze_lane() -> list[StageReport]:
        return [call(stages.load_bronze, lh, next(sizes), max_seconds)]

    def gold_lane() -> list[StageReport]:
        return [call(stages.score_gold, lh), call(stages.rebuild_merchant_daily, lh)]

    with _Lanes(pipelined, log) as lanes:
        next_bronze: Future | None = lanes.start(bronze_lane)
        gold: Future | None = None
        gold_due = 0.0  # monotonic time of the next gold pass: the first batch starts one
        while True:
            bronze, next_bronze = next_bronze.result(), None
            last = time.monotonic() >= deadline or (until_idle and _idle(bronze))
            if not last:  # the next batch loads while this one is promoted
                next_bronze = lanes.start(bronze_lane)
            batch = [*bronze, call(stages.promote_silver, lh)]
            if gold is not None and (last or gold.done()):
                batch, gold = batch + gold.result(), None
            if last:
                batch += gold_lane()  # the run ends with gold caught up
            elif gold is None and time.monotonic() >= gold_due:
                gold, gold_due = lanes.start(gold_lane), time.monotonic() + gold_every_seconds
            totals.add(batch)
            log(totals.batch_line(batch))
            if last and (time.monotonic() >= deadline or _idle(batch)):
                return totals
            if next_bronze is None:  # bronze was idle but silver or gold had work: look again
                next_bronze = lanes.start(bronze_lane)


def _ramp(max_records: int) -> Iterator[int]:
    """Batch sizes: a quarter and a half of ``max_records`` first, then ``max_records``, so the
    lanes overlap after a quarter batch instead of a whole one (a drain of a backlog starts
    promoting sooner; a quiet stream never fills a batch anyway)."""
    yield max(1, max_records // 4)
    yield max(1, max_records // 2)
    yield from itertools.repeat(max_records)


def _idle(reports: list[StageReport]) -> bool:
    """No stage had rows and the broker holds nothing unread (``reports[0]`` is bronze's)."""
    return all(r.rows_in == 0 for r in reports) and not any(reports[0].lag.values())


class _Lanes:
    """Lanes run in two worker threads, each in a copy of the caller's context (so a Prefect
    flow run's tasks stay in that flow run); without ``pipelined``, a lane runs when its result
    is asked for. Leaving waits for every lane still in flight: its commits are whole, and its
    failure is logged rather than raised over the one that is propagating."""

    def __init__(self, pipelined: bool, log: Callable[[str], None]) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="lane") if pipelined else None
        self._started: list[Future] = []
        self._log = log

    def start(self, lane: Lane) -> Future:
        if self._pool is None:
            return _Deferred(lane)
        future = self._pool.submit(copy_context().run, lane)
        self._started = [f for f in self._started if not f.done()] + [future]
        return future

    def __enter__(self) -> _Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is None:
            return
        for future in self._started:
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 - reported, not raised over the first
                if exc[1] is None:
                    raise
                self._log(f"a lane in flight failed too: {error!r}")
        self._pool.shutdown()


class _Deferred(Future):
    """A lane that runs when its result is asked for (no overlap)."""

    def __init__(self, lane: Lane) -> None:
        super().__init__()
        self._lane = lane

    def done(self) -> bool:
        return True  # ready to be collected: running it now is what sequential means

    def result(self, timeout: float | None = None) -> Any:
        if not super().done():
            try:
                self.set_result(self._lane())
            except Exception as error:
                self.set_exception(error)
        return super().result(timeout)
