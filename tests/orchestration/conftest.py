"""A real Prefect server for the orchestration tests, started with the same functions as
``lakehouse up`` (``lakehouse.stack``, ``lakehouse.supervisor``) on a free port, with a private
PREFECT_HOME and SQLite DB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefect]:
    """One Prefect server on 127.0.0.1 for the session (about 15 s to start on an idle machine)."""
    root = tmp_path_factory.mktemp("prefect")
    port = free_port()
    server = stack.prefect_server(root / "home", port, root / "run", root / "logs")
    supervisor.start(server, timeout_s=240)
    ui_url = f"http://{supervisor.HOST}:{port}"
    try:
        yield LocalPrefect(f"{ui_url}/api", ui_url, root / "home", root / "run", root / "logs")
    finally:
        supervisor.stop(server)
