"""Run the micro-batch loop in a subprocess that stops dead at a chosen point, for kill -9 tests.

``python -m tests.flows.crash_harness <point> <marker file>`` runs ``lakehouse run microbatch``'s
code; when execution reaches ``<point>`` the real step has completed, the marker file is written
and the process sleeps until the test kills it with SIGKILL. Nothing is faked: the crash is a
real ``kill -9`` of a real process between two real commits.

Points:
  mid-consume        after messages were consumed, before the bronze commit
  after-bronze       after the bronze Iceberg commit, before the consumer-group offset commit
  after-offsets      after the offset commit, before silver
  after-quarantine   after silver's quarantine append, before the events append
  after-silver       after the silver events append, before gold
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flows.context import Lakehouse
from flows.loop import run_loop
from ingest.reader_process import ReaderProcess
from tests.support.patching import wrap_everywhere
from warehouse import io
from warehouse import tables as T


def _stop(marker: Path) -> None:
    marker.write_text("reached")
    while True:
        time.sleep(1)


def _after(fn, marker: Path, when=lambda *a, **k: True):
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        if when(*args, **kwargs):
            _stop(marker)
        return result

    return wrapper


def _is(spec: T.TableSpec):
    return lambda table, *a, **k: tuple(table.name()) == (spec.namespace, spec.name)


#: point -> the function after which the process stops, and the table it must have written
POINTS: dict[str, tuple[object, str, T.TableSpec | None]] = {
    "mid-consume": (ReaderProcess, "poll_batch", None),
    "after-bronze": (io, "append", T.BRONZE_WEBHOOK_EVENTS),
    "after-offsets": (ReaderProcess, "commit", None),
    "after-quarantine": (io, "append", T.SILVER_QUARANTINE),
    "after-silver": (io, "append", T.SILVER_PAYMENT_EVENTS),
}


def install(point: str, marker: Path) -> None:
    if point not in POINTS:
        raise SystemExit(f"unknown point {point}")
    owner, name, spec = POINTS[point]
    when = _is(spec) if spec else lambda *a, **k: True
    wrap_everywhere(owner, name, lambda fn: _after(fn, marker, when))


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    lh = Lakehouse()  # no warm-up: Great Expectations is imported only if silver runs
    run_loop(
        lh,
        max_records=int(sys.argv[3]) if len(sys.argv) > 3 else 500,
        max_seconds=2.0,
        until_idle=True,
        run_for_seconds=120,
        log=print,
    )
