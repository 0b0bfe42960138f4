"""The local stack as plain functions: start and stop each part on 127.0.0.1.

Parts, in start order: the embedded broker (``lakehouse.broker``), a Prefect server on SQLite, the
``lakehouse-process`` work pool with the deployments of ``prefect.yaml``, a process worker, the
webhook receiver, the MLflow UI and the scoring API (``serving``; it answers 503
``model_unavailable`` until the first training, and follows the champions without a restart). Each
long-running part is a ``lakehouse.supervisor.Service`` (a command, a pid file under ``<home>/run``,
a log under ``<home>/logs`` and a readiness check), started and stopped by the one supervisor. Every
function is idempotent: starting a running part only waits until it is ready; stopping a stopped
part is a no-op. Child processes get ``PREFECT_API_URL`` of the local server and an absolute
``LAKEHOUSE_HOME``, so flow runs see the same lakehouse as the command that started them. What
``lakehouse status`` reads is in ``lakehouse.status``; the Prefect API and CLI calls in
``lakehouse.prefect_api``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lakehouse.broker import from_settings
from lakehouse.prefect_api import (
    WORK_POOL,
    crash_orphaned_runs,
    deploy,
    ensure_work_pool,
    prefect_env,
    worker_online,
)
from lakehouse.supervisor import HOST, Service, http_ok, running_pid, start, stop
from settings import DEV_WEBHOOK_SECRET, Settings

LOCAL_WORKER = "lakehouse-local"
LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"


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
    receiver = f"http://{settings.receiver_host}:{settings.receiver_port}/health/live"
    mlflow = f"http://{HOST}:{settings.mlflow_port}/health"
    scoring = f"http://{settings.scoring_host}:{settings.scoring_port}/health/live"
    return {
        "prefect-server": prefect_server(
            home, settings.prefect_port, runs, logs, settings.prefect_database_url
        ),
        "prefect-worker": prefect_worker(api_url, home, runs, logs, env=env),
        "receiver": _command(
            settings,
            "receiver",
            settings.receiver_port,
            receiver,
            {"LAKEHOUSE_STRIPE_WEBHOOK_SECRETS": ",".join(webhook_secrets(settings))},
        ),
        "mlflow": _command(settings, "mlflow", settings.mlflow_port, mlflow),
        "scoring": _command(settings, "scoring", settings.scoring_port, scoring),
    }


def _command(
    settings: Settings,
    name: str,
    port: int,
    health_url: str,
    env: Mapping[str, str] | None = None,
) -> Service:
    """``lakehouse <name>`` as a service (``env`` on top of ``child_env``), ready once
    ``health_url`` answers."""
    return Service(
        name,
        (sys.executable, "-m", "lakehouse.cli", name),
        run_dir(settings) / f"{name}.pid",
        settings.logs_dir / f"{name}.log",
        env={**child_env(settings), **(env or {})},
        port=port,
        marker=name,
        ready=lambda: http_ok(health_url),
    )


def urls(settings: Settings) -> dict[str, str]:
    """Where a person looks: the UIs, the receiver and the Data Docs folder."""
    return {
        "Prefect UI": f"http://{HOST}:{settings.prefect_port}",
        "receiver": f"http://{settings.receiver_host}:{settings.receiver_port}/webhooks/stripe",
        "MLflow UI": f"http://{HOST}:{settings.mlflow_port}",
        "scoring API": f"http://{settings.scoring_host}:{settings.scoring_port}/docs",
        "Data Docs": str(settings.data_docs_dir),
    }


def up(settings: Settings, step: Callable[[str], None] = lambda _: None) -> dict[str, str]:
    """Start every part (idempotent) and deploy prefect.yaml; return :func:`urls`."""
    if settings.uses_embedded_broker:
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
    for name in ("prefect-worker", "receiver", "mlflow", "scoring"):
        step(name)
        start(parts[name], timeout_s=180)
    return urls(settings)


def down(settings: Settings) -> dict[str, bool]:
    """Stop every part, last started first; map each part to whether it was running.

    Runs the worker was executing die with it; they are marked CRASHED before the server stops.
    """
    parts = services(settings)
    stopped = {
        name: stop(parts[name]) for name in ("scoring", "mlflow", "receiver", "prefect-worker")
    }
    if stopped["prefect-worker"] and running_pid(parts["prefect-server"]) is not None:
        crash_orphaned_runs(prefect_api_url(settings), "stopped by lakehouse down")
    stopped["prefect-server"] = stop(parts["prefect-server"])
    if settings.uses_embedded_broker:
        stopped["broker"] = from_settings().stop()
    return stopped
