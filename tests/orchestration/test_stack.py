"""The local stack's functions: processes (``lakehouse.supervisor``), deployments on a real
Prefect server and orphaned runs (``lakehouse.prefect_api``), and ``lakehouse status`` before
anything ran."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lakehouse import prefect_api, stack, supervisor
from lakehouse.cli import app
from lakehouse.status import parts_status
from lakehouse.supervisor import free_port
from settings import get_settings
from tests.orchestration.conftest import LocalPrefect

ALL_DEPLOYMENTS = {
    "microbatch",
    "train-models",
    "maintenance",
    "reconcile",
    "replay-quarantine",
    "rescore",
    "backfill",
}


def http_service(tmp_path: Path) -> supervisor.Service:
    """A tiny real service: Python's HTTP server, ready when it answers."""
    port = free_port()
    argv = (sys.executable, "-m", "http.server", str(port), "--bind", supervisor.HOST)
    return supervisor.Service(
        "http",
        argv,
        tmp_path / "run" / "http.pid",
        tmp_path / "logs" / "http.log",
        port=port,
        marker="http.server",
        cwd=tmp_path,
        ready=lambda: supervisor.http_ok(f"http://{supervisor.HOST}:{port}/"),
    )


def test_service_starts_once_and_stops_once(tmp_path: Path) -> None:
    service = http_service(tmp_path)
    pid = supervisor.start(service, timeout_s=30)
    try:
        assert supervisor.start(service, timeout_s=30) == pid, "a second start must find the first"
        assert supervisor.running_pid(service) == pid
    finally:
        assert supervisor.stop(service) is True
    assert supervisor.running_pid(service) is None
    assert supervisor.stop(service) is False


def test_service_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    service = supervisor.Service(
        "broken",
        (sys.executable, "-c", "import sys; print('no config here'); sys.exit(3)"),
        tmp_path / "broken.pid",
        tmp_path / "broken.log",
        ready=lambda: False,
    )
    with pytest.raises(supervisor.StackError, match="no config here"):
        supervisor.start(service, timeout_s=30)
    assert not service.pid_file.exists()


def test_stale_pid_file_is_not_a_running_service(tmp_path: Path) -> None:
    service = http_service(tmp_path)
    service.pid_file.parent.mkdir(parents=True)
    service.pid_file.write_text(str(1))  # alive, but not our server
    assert supervisor.running_pid(service) is None


def test_status_before_anything_ran_says_so(isolated_settings: Path) -> None:
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "not running" in result.output
    assert "consumer lag: the broker is not running" in result.output
    assert "tables: none yet" in result.output
    assert not (isolated_settings / "catalog.db").exists(), "status must not create a catalog"


@pytest.mark.integration
def test_deploy_puts_every_prefect_yaml_deployment_on_the_pool(
    prefect_server: LocalPrefect,
) -> None:
    prefect_api.ensure_work_pool(prefect_server.api_url, prefect_server.home)
    prefect_api.ensure_work_pool(prefect_server.api_url, prefect_server.home)  # idempotent
    prefect_api.deploy(prefect_server.api_url, prefect_server.home)
    found = deployments(prefect_server.api_url)
    assert set(found) >= ALL_DEPLOYMENTS
    assert {found[name]["work_pool_name"] for name in ALL_DEPLOYMENTS} == {prefect_api.WORK_POOL}
    step = found["microbatch"]["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == str(supervisor.REPO), "flow runs must start in the repository"


@pytest.mark.integration
def test_orphaned_run_is_crashed_and_frees_its_deployment_slot(
    prefect_server: LocalPrefect,
) -> None:
    api = prefect_server.api_url
    prefect_api.ensure_work_pool(api, prefect_server.home)
    prefect_api.deploy(api, prefect_server.home, names=["backfill"])
    deployment = deployments(api)["backfill"]
    run = post(
        api,
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"start": "2026-01-01", "end": "2026-01-02"}},
    )
    for state in ("PENDING", "RUNNING"):  # what a worker does, slot included
        post(api, f"/flow_runs/{run['id']}/set_state", {"state": {"type": state}})
    assert deployments(api)["backfill"]["global_concurrency_limit"]["active_slots"] == 1

    crashed = prefect_api.crash_orphaned_runs(api, "worker gone")

    assert run["name"] in crashed
    assert httpx.get(f"{api}/flow_runs/{run['id']}").json()["state_type"] == "CRASHED"
    assert deployments(api)["backfill"]["global_concurrency_limit"]["active_slots"] == 0


def post(api_url: str, path: str, body: dict) -> dict:
    response = httpx.post(f"{api_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def deployments(api_url: str) -> dict[str, dict]:
    found = post(api_url, "/deployments/filter", {"limit": 50, "offset": 0, "sort": "NAME_ASC"})
    return {d["name"]: d for d in found}


@pytest.mark.integration
def test_lakehouse_up_runs_the_scoring_api_as_a_supervised_service(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("LAKEHOUSE_SCORING_PORT", str(port))
    get_settings.cache_clear()
    settings = get_settings()
    service = stack.services(settings)["scoring"]
    assert service.port == port and service.argv[-1] == "scoring"
    assert stack.urls(settings)["scoring API"] == f"http://127.0.0.1:{port}/docs"

    pid = supervisor.start(service, timeout_s=120)
    try:
        base = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{base}/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["dependency"] == "models"
        answer = httpx.post(f"{base}/churn/predict", json={"customer_id": "cus_1"}, timeout=10)
        assert answer.json()["error"]["code"] == "model_unavailable"
        parts = {p.name: p for p in parts_status(settings)}
        assert parts["scoring"].running and f"pid {pid}, ready" in parts["scoring"].detail
    finally:
        assert supervisor.stop(service)
    assert supervisor.running_pid(service) is None
