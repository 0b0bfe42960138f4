"""A real Prefect server for the tests that need one, started with the same functions as
``lakehouse up`` (``lakehouse.stack``, ``lakehouse.supervisor``) on a free port, with a private
PREFECT_HOME and SQLite DB; and reads of its flow and task runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lakehouse import stack, supervisor
from lakehouse.supervisor import free_port


@dataclass(frozen=True)
class LocalPrefect:
    """A running Prefect server: where its API and UI answer, and where its files live."""

    api_url: str
    ui_url: str
    home: Path  # PREFECT_HOME (profiles, SQLite database)
    run_dir: Path  # pid files of the processes tests start next to it
    logs_dir: Path


@contextmanager
def running_prefect(root: Path) -> Iterator[LocalPrefect]:
    """A Prefect server on 127.0.0.1 (about 15 s to start on an idle machine) until exit."""
    port = free_port()
    server = stack.prefect_server(root / "home", port, root / "run", root / "logs")
    supervisor.start(server, timeout_s=240)
    ui_url = f"http://{supervisor.HOST}:{port}"
    try:
        yield LocalPrefect(f"{ui_url}/api", ui_url, root / "home", root / "run", root / "logs")
    finally:
        supervisor.stop(server)


def task_runs(api_url: str, flow_run_id: str) -> list[dict]:
    """Every task run of a flow run (name, state, run_count, …)."""
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200, "offset": 0}
    response = httpx.post(f"{api_url}/task_runs/filter", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def retried(api_url: str, flow_run_id: str, task_name: str) -> list[dict]:
    """The task runs named ``task_name`` (``load-bronze``) that ran more than once: retried."""
    return [
        run
        for run in task_runs(api_url, flow_run_id)
        if run["name"].startswith(f"{task_name}-") and run["run_count"] > 1
    ]
