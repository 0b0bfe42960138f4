"""The deploy files, checked without a Docker engine or a cluster: they parse, they configure the
code only through real settings, every image is pinned, secrets are referenced (never inlined),
the probes hit real receiver routes, and every prefect.yaml entrypoint loads a Prefect flow."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint

from ingest.receiver import create_app
from lakehouse import prefect_api
from serving.app import create_app as create_scoring_app
from settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = REPO / "deployments"
COMPOSE = DEPLOYMENTS / "docker-compose.yml"
ENV_EXAMPLE = DEPLOYMENTS / ".env.example"
DOCKERFILE = DEPLOYMENTS / "Dockerfile"
PREFECT_YAML = REPO / "prefect.yaml"
K8S = sorted((DEPLOYMENTS / "k8s").glob("*.yaml"))
YAML_FILES = [PREFECT_YAML, COMPOSE, *K8S]
CONFIG_FILES = [*YAML_FILES, ENV_EXAMPLE, DOCKERFILE]

SECRET_NAME = re.compile(
    r"PASSWORD|SECRET|SECURITY|CATALOG_PROPERTIES|CATALOG_URI|ACCESS_KEY|API_KEY"
)
DEPLOYMENTS_EXPECTED = {
    "microbatch": "interval",
    "train-models": "cron",
    "maintenance": "cron",
    "reconcile": "cron",
    "replay-quarantine": None,
    "rescore": None,
    "backfill": None,
}


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_docs() -> list[dict[str, Any]]:
    """The Kubernetes objects of the manifests (kustomization.yaml is not one)."""
    return [doc for path in K8S for doc in load_all(path) if "metadata" in doc]


def k8s_containers(kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every pod template in the manifests."""
    for doc in k8s_docs():
        template = doc.get("spec", {}).get("template", {}).get("spec")
        if template and (kind is None or doc["kind"] == kind):
            for container in template.get("containers", []) + template.get("initContainers", []):
                yield doc["metadata"]["name"], container


def prefect_deployments() -> list[dict[str, Any]]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


# --- every file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_deploy_file_parses_as_yaml(path: Path) -> None:
    assert load_all(path), f"{path} holds no YAML document"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_lakehouse_variable_is_a_settings_field(path: Path) -> None:
    fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"\bLAKEHOUSE_[A-Z0-9_]+\b", path.read_text()))
    assert used - fields == set(), f"{path.name} sets variables Settings does not read"


def image_is_pinned(ref: str) -> bool:
    """A digest, or a tag other than latest (a registry port is not a tag)."""
    if "@sha256:" in ref:
        return True
    name, _, tag = ref.rpartition(":")
    return bool(name) and bool(tag) and "/" not in tag and tag != "latest" and "$" not in ref


def all_images() -> list[tuple[str, str]]:
    images = [(f"compose {name}", svc["image"]) for name, svc in compose()["services"].items()]
    images += [(f"k8s {workload}", c["image"]) for workload, c in k8s_containers()]
    images += [
        ("Dockerfile", line.split()[1])
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    return images


def test_every_image_is_pinned_by_version() -> None:
    unpinned = [(where, ref) for where, ref in all_images() if not image_is_pinned(ref)]
    assert unpinned == []


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        ("postgres:16.4-alpine", True),
        ("ghcr.io/mlflow/mlflow:v3.17.2", True),
        ("redpanda@sha256:0123abcd", True),
        ("postgres", False),
        ("postgres:latest", False),
        ("localhost:5000/app", False),
    ],
)
def test_image_pin_rule(ref: str, pinned: bool) -> None:
    assert image_is_pinned(ref) is pinned


# --- docker-compose ------------------------------------------------------------------------------


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def test_compose_has_every_part_of_the_stack() -> None:
    services = set(compose()["services"])
    expected = {
        "redpanda",
        "redpanda-console",
        "receiver",
        "prefect-server",
        "prefect-db",
        "prefect-worker",
        "mlflow",
        "mlflow-db",
        "minio",
        "minio-init",
        "catalog-db",
    }
    assert expected <= services


def test_compose_secrets_come_from_the_env_file() -> None:
    inline = [
        (name, var)
        for name, svc in compose()["services"].items()
        for var, value in compose_environment(svc).items()
        if SECRET_NAME.search(var) and "${" not in value
    ]
    assert inline == [], "secret-looking variables with literal values in docker-compose.yml"


def test_every_interpolated_variable_is_in_env_example() -> None:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert interpolated - documented == set()


def test_compose_runs_the_production_shape_of_the_tests() -> None:
    """The variables tests/production runs the chain with: the catalog in PostgreSQL, the
    warehouse on S3 (MinIO) with its properties, Redpanda, MLflow's server."""
    services = compose()["services"]
    worker = compose_environment(services["prefect-worker"])
    assert worker["LAKEHOUSE_CATALOG_URI"].startswith("postgresql+psycopg://")
    assert "@catalog-db:5432/catalog" in worker["LAKEHOUSE_CATALOG_URI"]
    assert worker["LAKEHOUSE_WAREHOUSE"].startswith("s3://")
    assert worker["LAKEHOUSE_CATALOG_PROPERTIES"].startswith("${")
    assert worker["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:9092"
    assert worker["LAKEHOUSE_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "s3.endpoint" in ENV_EXAMPLE.read_text()


#: Where ``make compose-plugin`` builds docker compose when the docker CLI has none.
COMPOSE_CONFIG_DIR = REPO / ".tools" / "docker"


def _compose_env() -> dict[str, str] | None:
    """The environment in which ``docker compose`` works: as installed, or with the plugin that
    ``make compose-plugin`` built; None when neither has one."""
    for env in (dict(os.environ), {**os.environ, "DOCKER_CONFIG": str(COMPOSE_CONFIG_DIR)}):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, env=env)
        if probe.returncode == 0:
            return env
    return None


def test_docker_compose_validates_the_file() -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed: docker compose config cannot run")
    env = _compose_env()
    if env is None:
        pytest.skip("docker has no compose plugin and `make compose-plugin` built none (no Go)")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr


def test_compose_app_services_run_the_project_image() -> None:
    services = compose()["services"]
    for name in ("receiver", "prefect-server", "prefect-worker", "lakehouse-init"):
        assert services[name]["build"]["dockerfile"] == "deployments/Dockerfile", name


def test_dockerfile_installs_the_locked_set_on_python_311_slim() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11[\w.-]*-slim", text, re.MULTILINE)
    assert "uv sync --frozen" in text


# --- Kubernetes ----------------------------------------------------------------------------------


def receiver_routes() -> set[str]:
    settings = Settings(environment="production", stripe_webhook_secrets=["whsec_deployed"])
    return {route.path for route in create_app(settings).routes}


def test_receiver_probes_point_at_real_routes() -> None:
    routes = receiver_routes()
    containers = [c for workload, c in k8s_containers("Deployment") if workload == "receiver"]
    assert containers, "no receiver Deployment in deployments/k8s"
    for probe in ("livenessProbe", "readinessProbe"):
        path = containers[0][probe]["httpGet"]["path"]
        assert path in routes, f"{probe} {path} is not a receiver route"
    assert containers[0]["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert containers[0]["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_compose_receiver_healthcheck_is_a_real_route() -> None:
    check = " ".join(compose()["services"]["receiver"]["healthcheck"]["test"])
    assert set(re.findall(r"/health/\w+", check)) <= receiver_routes()


def scoring_routes() -> set[str]:
    settings = Settings(environment="production", stripe_webhook_secrets=["whsec_deployed"])
    return {route.path for route in create_scoring_app(settings).routes}


def test_scoring_probes_and_healthcheck_point_at_real_routes() -> None:
    routes = scoring_routes()
    [container] = [c for workload, c in k8s_containers("Deployment") if workload == "scoring"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert {"/health/live", "/health/ready"} <= routes
    assert container["command"] == ["lakehouse", "scoring"]
    check = " ".join(compose()["services"]["scoring"]["healthcheck"]["test"])
    assert set(re.findall(r"/health/\w+", check)) <= routes
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in k8s_docs()}
    assert {("Deployment", "scoring"), ("Service", "scoring")} <= kinds


def test_k8s_has_receiver_service_hpa_and_a_worker() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in k8s_docs()}
    expected = {
        ("Deployment", "receiver"),
        ("Service", "receiver"),
        ("HorizontalPodAutoscaler", "receiver"),
        ("Deployment", "prefect-worker"),
        ("ConfigMap", "lakehouse-config"),
    }
    assert expected <= kinds


def test_k8s_secrets_are_referenced_not_inlined() -> None:
    assert not [doc for doc in k8s_docs() if doc["kind"] == "Secret"], "commit no Secret"
    for workload, container in k8s_containers():
        for var in container.get("env", []):
            if SECRET_NAME.search(var["name"]):
                assert "secretKeyRef" in var.get("valueFrom", {}), (workload, var["name"])


def test_k8s_worker_uses_the_postgresql_catalog_and_the_s3_warehouse() -> None:
    [config] = [doc for doc in k8s_docs() if doc["kind"] == "ConfigMap"]
    assert config["data"]["LAKEHOUSE_WAREHOUSE"].startswith("s3://")
    [(_, worker)] = [(w, c) for w, c in k8s_containers() if w == "prefect-worker"]
    secret_refs = {
        var["name"] for var in worker["env"] if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert {"LAKEHOUSE_CATALOG_URI", "LAKEHOUSE_CATALOG_PROPERTIES"} <= secret_refs


def test_k8s_worker_serves_the_lakehouse_pool() -> None:
    [(_, worker)] = [(w, c) for w, c in k8s_containers() if w == "prefect-worker"]
    command = worker["command"]
    assert command[command.index("--pool") + 1] == prefect_api.WORK_POOL


# --- prefect.yaml --------------------------------------------------------------------------------


def test_prefect_yaml_declares_every_deployment_and_its_schedule() -> None:
    found = {}
    for deployment in prefect_deployments():
        schedules = deployment.get("schedules") or []
        found[deployment["name"]] = next(
            (kind for kind in ("interval", "cron") if schedules and kind in schedules[0]), None
        )
    assert found == DEPLOYMENTS_EXPECTED


def test_every_deployment_runs_on_the_process_pool() -> None:
    pools = {d["name"]: d["work_pool"]["name"] for d in prefect_deployments()}
    assert set(pools.values()) == {prefect_api.WORK_POOL}


def test_microbatch_is_a_warm_loop_that_fits_its_interval() -> None:
    [microbatch] = [d for d in prefect_deployments() if d["name"] == "microbatch"]
    interval = microbatch["schedules"][0]["interval"]
    params = microbatch["parameters"]
    assert interval >= 60, "Prefect does not support sub-minute schedules"
    assert params["until_idle"] is False
    assert 0 < params["run_for_seconds"] < interval, "runs would overlap"
    assert microbatch["concurrency_limit"]["limit"] == 1


def test_prefect_yaml_holds_no_secret() -> None:
    text = PREFECT_YAML.read_text().lower()
    for needle in ("whsec_", "password", "secret-access-key", "access-key-id"):
        assert needle not in text


@pytest.mark.parametrize("deployment", prefect_deployments(), ids=lambda d: d["name"])
def test_entrypoint_loads_a_prefect_flow_taking_its_parameters(deployment: dict[str, Any]) -> None:
    path, function = deployment["entrypoint"].split(":")
    assert (REPO / path).is_file(), f"{path} does not exist (yet)"
    flow = load_flow_from_entrypoint(f"{REPO / path}:{function}")
    assert isinstance(flow, Flow)
    accepted = set(inspect.signature(flow.fn).parameters)
    assert set(deployment.get("parameters") or {}) <= accepted
