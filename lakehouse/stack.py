"""The local stack as plain functions: start, stop and inspect each part on 127.0.0.1.

Parts, in start order: the embedded broker (``lakehouse.broker``), a Prefect server on SQLite, the
``lakehouse-process`` work pool with the deployments of ``prefect.yaml``, a process worker, the
webhook receiver and the MLflow UI. Each long-running part is a :class:`Service`: a command, a pid
file under ``<home>/run``, a log under ``<home>/logs`` and a readiness check. Every function is
idempotent: starting a running part only waits until it is ready; stopping a stopped part is a
no-op. Child processes get ``PREFECT_API_URL`` of the local server and an absolute
``LAKEHOUSE_HOME``, so flow runs see the same lakehouse as the command that started them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.broker import port_is_free
from settings import DEV_WEBHOOK_SECRET, Settings

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "prefect.yaml"
WORK_POOL = "lakehouse-process"
LOCAL_WORKER = "lakehouse-local"
HOST = "127.0.0.1"
LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says what to do."""


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)  # on top of os.environ
    ready: Callable[[], bool] | None = None
    port: int | None = None  # checked free before starting
    marker: str = ""  # must appear in the process's command line (guards against reused pids)
    cwd: Path = REPO


# --- processes ------------------------------------------------------------------------------------


def running_pid(service: Service) -> int | None:
    """The pid of the running service, or None (stale pid files are ignored)."""
    try:
        pid = int(service.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if service.marker and cmdline.exists():
        if service.marker.encode() not in cmdline.read_bytes():
            return None
    return pid


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError):
        return False


def start(service: Service, timeout_s: float = 120.0) -> int:
    """Start ``service`` (or find it running), wait until it is ready; return its pid."""
    if (pid := running_pid(service)) is not None:
        wait_ready(service, timeout_s)
        return pid
    if service.port is not None and not port_is_free(service.port, HOST):
        raise StackError(
            f"{service.name}: port {service.port} on {HOST} is taken by another "
            "program; stop it or choose another port (LAKEHOUSE_*_PORT)"
        )
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        proc = subprocess.Popen(
            service.argv,
            cwd=service.cwd,
            env={**os.environ, **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(service, timeout_s, proc)
    except StackError:
        stop(service)
        raise
    return proc.pid


def wait_ready(service: Service, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll the readiness check until it passes; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while service.ready is not None and not service.ready():
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"{service.name} exited at start (code {proc.returncode}):\n"
                f"{log_tail(service.log_file)}\n(full log: {service.log_file})"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} not ready after {timeout_s:.0f} s; see {service.log_file}"
            )
        time.sleep(0.5)


def stop(service: Service, timeout_s: float = 20.0) -> bool:
    """Stop the service's process group (SIGTERM, then SIGKILL); return whether it ran."""
    pid = running_pid(service)
    service.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' if there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- Prefect --------------------------------------------------------------------------------------


def prefect_env(api_url: str, prefect_home: Path) -> dict[str, str]:
    """Environment of every Prefect client process: the local server, a private PREFECT_HOME."""
    return {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def prefect_server(
    prefect_home: Path, port: int, run_dir: Path, logs_dir: Path, database_url: str | None = None
) -> Service:
    """``prefect server start`` on 127.0.0.1:port with its database at ``database_url``
    (PostgreSQL: ``postgresql+asyncpg://…``), by default SQLite under prefect_home."""
    api_url = f"http://{HOST}:{port}/api"
    database_url = database_url or f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    env = {
        **prefect_env(api_url, prefect_home),
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_UI_API_URL": api_url,  # the UI otherwise calls 127.0.0.1:4200 whatever the port
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        # Deployment concurrency slots are leases; kept in memory (the default) they are lost with
        # the server, and a slot held by a run that died with it would block its deployment.
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_ON_DISK,
    }
    argv = (sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port))
    return Service(
        "prefect-server",
        argv,
        run_dir / "prefect-server.pid",
        logs_dir / "prefect-server.log",
        env=env,
        port=port,
        marker="server",
        ready=lambda: http_ok(f"{api_url}/health"),
    )


def prefect_worker(
    api_url: str,
    prefect_home: Path,
    run_dir: Path,
    logs_dir: Path,
    env: Mapping[str, str] | None = None,
    name: str = LOCAL_WORKER,
) -> Service:
    """A process worker on the lakehouse pool; ready once the server lists it online."""
    command = ("worker", "start", "--pool", WORK_POOL, "--type", "process", "--name", name)
    argv = (sys.executable, "-m", "prefect", *command)
    return Service(
        "prefect-worker",
        argv,
        run_dir / "prefect-worker.pid",
        logs_dir / "prefect-worker.log",
        env={**(env or {}), **prefect_env(api_url, prefect_home)},
        marker="worker",
        ready=lambda: worker_online(api_url, name),
    )


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


# --- the stack described by the settings ----------------------------------------------------------


def run_dir(settings: Settings) -> Path:
    return settings.home_abs / "run"


def prefect_home(settings: Settings) -> Path:
    return settings.home_abs / "prefect"


def prefect_api_url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.prefect_port}/api"


def child_env(settings: Settings) -> dict[str, str]:
    """LAKEHOUSE_* for child processes: an absolute home, so their working directory is moot."""
    return {"LAKEHOUSE_HOME": str(settings.home_abs)}


def webhook_secrets(settings: Settings) -> list[str]:
    """The secrets the embedded stack's receiver accepts: the configured ones, else (outside
    production, which requires them) the development secret, passed to it explicitly."""
    return settings.stripe_webhook_secrets or [DEV_WEBHOOK_SECRET]


def services(settings: Settings) -> dict[str, Service]:
    """The long-running parts besides the broker, in start order."""
    runs, logs = run_dir(settings), settings.logs_dir
    api_url, home = prefect_api_url(settings), prefect_home(settings)
    env = child_env(settings)
    receiver = f"http://{settings.receiver_host}:{settings.receiver_port}"
    mlflow = f"http://{HOST}:{settings.mlflow_port}"
    lakehouse = (sys.executable, "-m", "lakehouse.cli")
    return {
        "prefect-server": prefect_server(
            home, settings.prefect_port, runs, logs, settings.prefect_database_url
        ),
        "prefect-worker": prefect_worker(api_url, home, runs, logs, env=env),
        "receiver": Service(
            "receiver",
            (*lakehouse, "receiver"),
            runs / "receiver.pid",
            logs / "receiver.log",
            env={**env, "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS": ",".join(webhook_secrets(settings))},
            port=settings.receiver_port,
            marker="receiver",
            ready=lambda: http_ok(f"{receiver}/health/live"),
        ),
        "mlflow": Service(
            "mlflow",
            (*lakehouse, "mlflow"),
            runs / "mlflow.pid",
            logs / "mlflow.log",
            env=env,
            port=settings.mlflow_port,
            marker="mlflow",
            ready=lambda: http_ok(f"{mlflow}/health"),
        ),
    }


def urls(settings: Settings) -> dict[str, str]:
    """Where a person looks: the UIs, the receiver and the Data Docs folder."""
    return {
        "Prefect UI": f"http://{HOST}:{settings.prefect_port}",
        "receiver": f"http://{settings.receiver_host}:{settings.receiver_port}/webhooks/stripe",
        "MLflow UI": f"http://{HOST}:{settings.mlflow_port}",
        "Data Docs": str(settings.data_docs_dir),
    }


def up(settings: Settings, step: Callable[[str], None] = lambda _: None) -> dict[str, str]:
    """Start every part (idempotent) and deploy prefect.yaml; return :func:`urls`."""
    if settings.uses_embedded_broker:
        from lakehouse.broker import from_settings

        step("broker")
        from_settings().start()
    parts = services(settings)
    api_url, home = prefect_api_url(settings), prefect_home(settings)
    step("Prefect server")
    start(parts["prefect-server"], timeout_s=240)
    step("work pool and deployments")
    ensure_work_pool(api_url, home)
    deploy(api_url, home, env=child_env(settings))
    if running_pid(parts["prefect-worker"]) is None:
        crash_orphaned_runs(
            api_url, "its worker stopped before it finished (found by lakehouse up)"
        )
    for name in ("prefect-worker", "receiver", "mlflow"):
        step(name)
        start(parts[name], timeout_s=180)
    return urls(settings)


def down(settings: Settings) -> dict[str, bool]:
    """Stop every part, last started first; map each part to whether it was running.

    Runs the worker was executing die with it; they are marked CRASHED before the server stops.
    """
    parts = services(settings)
    stopped = {name: stop(parts[name]) for name in ("mlflow", "receiver", "prefect-worker")}
    if stopped["prefect-worker"] and running_pid(parts["prefect-server"]) is not None:
        crash_orphaned_runs(prefect_api_url(settings), "stopped by lakehouse down")
    stopped["prefect-server"] = stop(parts["prefect-server"])
    if settings.uses_embedded_broker:
        from lakehouse.broker import from_settings

        stopped["broker"] = from_settings().stop()
    return stopped


# --- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStatus:
    """One part of the stack as `lakehouse status` shows it."""

    name: str
    running: bool
    detail: str


def parts_status(settings: Settings) -> list[PartStatus]:
    """Each part: running or not, with its pid and whether its readiness check passes."""
    rows = [_broker_status(settings)]
    for svc in services(settings).values():
        pid = running_pid(svc)
        if pid is None:
            rows.append(PartStatus(svc.name, False, f"not running (log: {svc.log_file})"))
            continue
        ready = svc.ready is None or svc.ready()
        rows.append(PartStatus(svc.name, True, f"pid {pid}, {'ready' if ready else 'NOT ready'}"))
    return rows


def _broker_status(settings: Settings) -> PartStatus:
    if not settings.uses_embedded_broker:
        return PartStatus("broker", True, f"external: {settings.bootstrap_servers}")
    from lakehouse.broker import from_settings

    pid = from_settings().pid()
    if pid is None:
        return PartStatus("broker", False, "not running")
    return PartStatus("broker", True, f"pid {pid}, {settings.bootstrap_servers}")


def warehouse_exists(settings: Settings) -> bool:
    """False only when the default SQLite catalog has not been created yet."""
    return settings.catalog_uri is not None or (settings.home_abs / "catalog.db").exists()


def committed_offsets(settings: Settings) -> dict[str, int] | None:
    """Bronze's committed offsets ``{"topic:partition": next offset}``; None without bronze."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from warehouse.catalog import get_catalog
    from warehouse.io import latest_summary_value
    from warehouse.tables import BRONZE_WEBHOOK_EVENTS, SUMMARY_OFFSETS

    if not warehouse_exists(settings):
        return None
    try:
        table = get_catalog(settings).load_table(BRONZE_WEBHOOK_EVENTS.identifier_str)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None
    raw = latest_summary_value(table, SUMMARY_OFFSETS)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}


def consumer_lag(end_offsets: Mapping[str, int], committed: Mapping[str, int]) -> dict[str, int]:
    """Per topic: messages written minus messages bronze committed (summed over partitions)."""
    done: dict[str, int] = {}
    for key, offset in committed.items():
        topic = key.rsplit(":", 1)[0]
        done[topic] = done.get(topic, 0) + offset
    return {topic: end - done.get(topic, 0) for topic, end in end_offsets.items()}


def topic_lag(settings: Settings) -> dict[str, int]:
    """Consumer lag of bronze per topic, from the broker's end offsets (raises if it is down)."""
    from ingest.topics import ALL_TOPICS
    from lakehouse.broker import end_offsets

    ends = end_offsets(settings.kafka_client_config(), ALL_TOPICS)
    return consumer_lag(ends, committed_offsets(settings) or {})


def table_freshness(settings: Settings) -> dict[str, datetime | None]:
    """Per table: the timestamp of its newest snapshot (None: created, never written; missing:
    not created yet)."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from warehouse.catalog import get_catalog
    from warehouse.tables import ALL_TABLES

    if not warehouse_exists(settings):
        return {}
    catalog = get_catalog(settings)
    fresh: dict[str, datetime | None] = {}
    for spec in ALL_TABLES:
        try:
            table = catalog.load_table(spec.identifier_str)
        except (NoSuchTableError, NoSuchNamespaceError):
            continue
        newest = max((s.timestamp_ms for s in table.snapshots()), default=None)
        fresh[spec.identifier_str] = (
            None if newest is None else datetime.fromtimestamp(newest / 1000, tz=UTC)
        )
    return fresh
