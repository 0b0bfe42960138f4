"""`lakehouse mlflow`: the MLflow UI on localhost over the lakehouse's store and artifacts."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer


def mlflow_ui(
    port: Annotated[int | None, typer.Option(help="port [default: LAKEHOUSE_MLFLOW_PORT]")] = None,
) -> None:
    """Start the MLflow UI on 127.0.0.1 (runs, metrics, registered models and their aliases)."""
    from settings import get_settings

    settings = get_settings()
    artifacts = settings.resolved_mlflow_artifacts
    if artifacts.startswith("file://"):
        settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    port = port or settings.mlflow_port
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        settings.resolved_mlflow_tracking_uri,
        "--default-artifact-root",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    typer.echo(
        f"MLflow UI on http://127.0.0.1:{port} (store {settings.resolved_mlflow_tracking_uri})"
    )
    # no usage telemetry, and no GenAI job runner (a pool of worker processes this UI never uses)
    environment = {
        **os.environ,
        **(settings.s3_environment() if artifacts.startswith("s3://") else {}),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    try:
        code = subprocess.call(command, env=environment)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``mlflow`` to the ``lakehouse`` app."""
    app.command("mlflow")(mlflow_ui)
