"""Run the ``microbatch`` Prefect flow in this process against a real Prefect server, with a fault
installed, for the fault tests (``tests/flows/test_faults.py``).

``python -m tests.flows.fault_harness <fault> <max_records> [<run_for_seconds>]`` runs the flow
as a worker's flow-run process would (``PREFECT_API_URL`` and the ``LAKEHOUSE_*`` settings come
from the environment), with its task retries on; the last line printed is JSON with the flow run's
id and final state.

Faults installed here, in the flow's own process:
  none               no fault (the faults come from outside: a broker stop, a kill)
  commit-fails-once  the second bronze commit raises ``ConnectionError`` from pyiceberg's
                     ``Transaction.commit_transaction``, as an unreachable REST catalog or object
                     store raises it. A stand-in raised from the library in-process: the SQLite
                     catalog cannot be made to drop one connection on cue.
  catalog-locked     just before the second bronze commit, another process takes SQLite's write
                     lock on the catalog and holds it for 35 s, past the catalog's 30 s busy
                     timeout: a real fault, started on cue so that it hits a bronze commit.
  reader-killed      just before the second bronze commit, the reader child is killed with
                     SIGKILL: a real kill, on cue so that the loader next calls a dead child
                     (the group commit after the bronze commit).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from pyiceberg.table import Transaction

from flows.microbatch import microbatch
from settings import get_settings
from tests.support.faults import hold_write_lock, reader_child_of

BRONZE = ("bronze", "webhook_events")


def _before_bronze_commit(number: int, fault: Callable[[], None]) -> None:
    """Run ``fault`` just before the ``number``-th bronze commit of this process."""
    original = Transaction.commit_transaction
    seen = {"bronze": 0}
    lock = threading.Lock()

    def commit_transaction(self: Transaction):
        if tuple(self._table.name()) == BRONZE:
            with lock:
                seen["bronze"] += 1
                due = seen["bronze"] == number
            if due:
                fault()
        return original(self)

    Transaction.commit_transaction = commit_transaction


def _connection_dropped() -> None:
    raise ConnectionError("stand-in: the catalog dropped the connection mid-commit")


LOCK_SECONDS = 35  # the catalog's busy timeout is 30 s (warehouse.catalog)


def _lock_catalog() -> None:
    """Another process takes the catalog's write lock and holds it; returns once it is held."""
    database = get_settings().resolved_catalog_uri.removeprefix("sqlite:///").split("?")[0]
    holder = hold_write_lock(Path(database), LOCK_SECONDS)
    print(f"fault: the catalog is locked for {LOCK_SECONDS} s by process {holder.pid}", flush=True)


def _kill_reader() -> None:
    child = reader_child_of(os.getpid())
    assert child is not None, "no reader child to kill"
    os.kill(child, signal.SIGKILL)
    print(f"fault: the reader child {child} was killed", flush=True)


FAULTS = {
    "none": lambda: None,
    "commit-fails-once": lambda: _before_bronze_commit(2, _connection_dropped),
    "catalog-locked": lambda: _before_bronze_commit(2, _lock_catalog),
    "reader-killed": lambda: _before_bronze_commit(2, _kill_reader),
}


def main(fault: str, max_records: int, run_for_seconds: float) -> None:
    FAULTS[fault]()
    state = microbatch(
        max_records=max_records,
        max_seconds=2.0,
        until_idle=True,
        run_for_seconds=run_for_seconds,
        return_state=True,
    )
    result = {"flow_run_id": str(state.state_details.flow_run_id), "state": state.type.value}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 180.0)
