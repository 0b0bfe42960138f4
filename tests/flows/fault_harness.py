"""Run the ``microbatch`` Prefect flow in this process against a real Prefect server, with a fault
installed, for the fault tests (``tests/flows/test_faults.py``).

``python -m tests.flows.fault_harness <fault> <max_records> [<run_for_seconds>]`` runs the flow
as a worker's flow-run process would (``PREFECT_API_URL`` and the ``LAKEHOUSE_*`` settings come
from the environment), with its task retries on; the last line printed is JSON with the flow run's
id and final state.

Faults installed here, in the flow's own process:
  none               no fault (the faults come from outside: a lock, a broker stop, a kill)
  commit-fails-once  the second bronze commit raises ``ConnectionError`` from pyiceberg's
                     ``Transaction.commit_transaction``, as an unreachable REST catalog or object
                     store raises it. A stand-in raised from the library in-process: the SQLite
                     catalog cannot be made to drop one connection on cue.
"""

from __future__ import annotations

import json
import sys
import threading

from pyiceberg.table import Transaction

from flows.microbatch import microbatch

BRONZE = ("bronze", "webhook_events")


def _fail_commit(number: int) -> None:
    """Make the ``number``-th bronze commit of this process raise ``ConnectionError``."""
    original = Transaction.commit_transaction
    seen = {"bronze": 0}
    lock = threading.Lock()

    def commit_transaction(self: Transaction):
        if tuple(self._table.name()) == BRONZE:
            with lock:
                seen["bronze"] += 1
                failing = seen["bronze"] == number
            if failing:
                raise ConnectionError("stand-in: the catalog dropped the connection mid-commit")
        return original(self)

    Transaction.commit_transaction = commit_transaction


FAULTS = {"none": lambda: None, "commit-fails-once": lambda: _fail_commit(2)}


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
