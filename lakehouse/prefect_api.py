"""Talking to the local Prefect server: its REST API (urllib, no client library start-up) for
workers and orphaned runs, and its CLI for the work pool and the deployments of ``prefect.yaml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from lakehouse.supervisor import REPO, StackError, http_ok

PREFECT_FILE = REPO / "prefect.yaml"
WORK_POOL = "lakehouse-process"


def prefect_env(api_url: str, prefect_home: Path) -> dict[str, str]:
    """Environment of every Prefect client process: the local server, a private PREFECT_HOME."""
    return {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def _post_json(url: str, body: object, timeout_s: float = 5.0) -> object:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)


def worker_online(api_url: str, name: str, pool: str = WORK_POOL) -> bool:
    """Whether the worker ``name`` has a fresh heartbeat on the pool."""
    try:
        workers = _post_json(
            f"{api_url}/work_pools/{pool}/workers/filter", {"limit": 50, "offset": 0}
        )
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return any(w.get("name") == name and w.get("status") == "ONLINE" for w in workers)


def crash_orphaned_runs(api_url: str, message: str) -> list[str]:
    """Mark runs of the pool that no worker runs any more (pending, running, cancelling) as
    CRASHED, which also frees their deployment's concurrency slot; return their names.

    Only for the local stack, whose one worker is known to be stopped when this is called.
    """
    runs = _post_json(
        f"{api_url}/flow_runs/filter",
        {
            "flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}},
            "work_pools": {"name": {"any_": [WORK_POOL]}},
            "limit": 200,
            "offset": 0,
        },
    )
    for run in runs:
        state = {"type": "CRASHED", "name": "Crashed", "message": message}
        _post_json(f"{api_url}/flow_runs/{run['id']}/set_state", {"state": state, "force": True})
    return [run["name"] for run in runs]


def run_prefect(
    args: Sequence[str],
    api_url: str,
    prefect_home: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
) -> str:
    """Run a Prefect CLI command from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {}), **prefect_env(api_url, prefect_home)},
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise StackError(f"`prefect {' '.join(args)}` failed:\n{tail}")
    return result.stdout


def ensure_work_pool(api_url: str, prefect_home: Path) -> None:
    """Create the process work pool (with Prefect's default job template) unless it exists."""
    if http_ok(f"{api_url}/work_pools/{WORK_POOL}"):
        return
    run_prefect(["work-pool", "create", WORK_POOL, "--type", "process"], api_url, prefect_home)


def deploy(
    api_url: str,
    prefect_home: Path,
    names: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """``prefect deploy`` of prefect.yaml: every deployment, or only ``names``."""
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    return run_prefect(
        ["deploy", *selection, "--no-prompt", "--prefect-file", str(PREFECT_FILE)],
        api_url,
        prefect_home,
        env=env,
    )
