"""The Prefect UI drives a real micro-batch: a data engineer opens the deployments page, starts
``microbatch`` with Run → Quick run, and the webhooks sent before are then in silver.

Everything is real: a Kafka-API broker, a Prefect server, the ``prefect.yaml`` deployment, a
process worker and Debian's Chromium driven by Playwright. Screenshots land in
``test-artifacts/ui/`` (gitignored).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from lakehouse import prefect_api, stack, supervisor
from lakehouse.broker import LocalBroker
from settings import get_settings
from simulator.direct import write_bodies
from simulator.events import encode, make_stripe_event
from tests.orchestration.conftest import LocalPrefect
from warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
DEPLOYMENT = "microbatch"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
EVENTS = 20


def test_quick_run_from_the_ui_moves_sent_events_into_silver(
    prefect_server: LocalPrefect,
    fresh_broker: Callable[[], LocalBroker],
    isolated_settings: Path,
    tmp_path: Path,
) -> None:
    require_chromium()
    broker = fresh_broker()
    sent = send_payments(EVENTS)
    worker_env = {
        "LAKEHOUSE_HOME": str(isolated_settings.resolve()),
        "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
    }
    api = prefect_server.api_url
    prefect_api.ensure_work_pool(api, prefect_server.home)
    prefect_api.deploy(api, prefect_server.home, names=[DEPLOYMENT], env=worker_env)
    deployment = find_deployment(api, DEPLOYMENT)
    pause_schedules(api, deployment)  # only the person's click may start a run
    before = {run["id"] for run in flow_runs(api, deployment["id"])}
    worker = stack.prefect_worker(
        api,
        prefect_server.home,
        tmp_path / "run",
        tmp_path / "logs",
        env=worker_env,
        name=f"ui-test-{uuid.uuid4().hex[:8]}",
    )
    supervisor.start(worker, timeout_s=120)
    try:
        with chromium_page() as page:
            quick_run(page, prefect_server.ui_url, DEPLOYMENT)
            run = wait_for_new_run(api, deployment["id"], before, timeout_s=60)
            run = wait_until_finished(api, run["id"], timeout_s=420)
            page.goto(f"{prefect_server.ui_url}/runs/flow-run/{run['id']}")
            page.get_by_text(run["state_name"]).first.wait_for()
            page.wait_for_timeout(2_000)  # let the run graph draw
            page.screenshot(path=ARTIFACTS / "04-flow-run.png", full_page=True)
    finally:
        supervisor.stop(worker)
    assert run["state_type"] == "COMPLETED", (
        f"flow run {run['name']} ended {run['state_type']}: {run['state'].get('message')}\n"
        f"worker log:\n{supervisor.log_tail(worker.log_file, 40)}"
    )
    assert sent <= silver_event_ids(), "events sent before the run are missing from silver"


# --- the person's side: Chromium on the Prefect UI -----------------------------------------------


def require_chromium() -> None:
    """Fail (never skip) without the browser: the test is part of `make test`."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the UI test drives Debian's Chromium. `make test` installs "
            "it (apt-get update && apt-get install -y chromium)."
        )


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A headless Chromium page (Debian's binary; Playwright's own download is blocked here)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def quick_run(page: Page, ui_url: str, deployment: str) -> None:
    """Deployments page → the deployment → Run → Quick run, as a person clicks it."""
    page.goto(f"{ui_url}/deployments")
    link = page.get_by_role("link", name=deployment, exact=True).first
    link.wait_for()
    page.screenshot(path=ARTIFACTS / "01-deployments.png", full_page=True)
    link.click()
    page.wait_for_url("**/deployments/deployment/**")
    page.get_by_role("button", name="Run", exact=True).click()
    page.screenshot(path=ARTIFACTS / "02-run-menu.png", full_page=True)
    page.get_by_role("button", name="Quick run").click()
    page.get_by_text("scheduled to start").first.wait_for()
    page.screenshot(path=ARTIFACTS / "03-quick-run.png", full_page=True)


# --- the data: webhooks in, silver out -----------------------------------------------------------


def send_payments(count: int) -> set[str]:
    """Write ``count`` successful payments to the topics as the receiver would; their event ids."""
    events = [
        make_stripe_event("payment_intent.succeeded", rng=random.Random(i)) for i in range(count)
    ]
    report = write_bodies((encode(e) for e in events), get_settings().kafka_client_config())
    assert report.written == count, report.errors
    return {e["id"] for e in events}


def silver_event_ids() -> set[str]:
    """Provider event ids in silver.payment_events, read with DuckDB like an analyst would."""
    con = connect()
    try:
        rows = con.sql("SELECT provider_event_id FROM silver.payment_events").fetchall()
    finally:
        con.close()
    return {row[0] for row in rows}


# --- the Prefect API (REST, like the UI uses it) -------------------------------------------------


def api_post(api_url: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{api_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def find_deployment(api_url: str, name: str) -> dict[str, Any]:
    found = api_post(
        api_url,
        "/deployments/filter",
        {"deployments": {"name": {"any_": [name]}}, "limit": 10, "offset": 0, "sort": "NAME_ASC"},
    )
    assert len(found) == 1, f"expected one deployment named {name!r}, found {len(found)}"
    return found[0]


def pause_schedules(api_url: str, deployment: dict[str, Any]) -> None:
    """Deactivate the deployment's schedules (Prefect also deletes their future runs)."""
    for schedule in deployment["schedules"]:
        response = httpx.patch(
            f"{api_url}/deployments/{deployment['id']}/schedules/{schedule['id']}",
            json={"active": False},
            timeout=30,
        )
        response.raise_for_status()


def flow_runs(api_url: str, deployment_id: str) -> list[dict[str, Any]]:
    return api_post(
        api_url,
        "/flow_runs/filter",
        {
            "deployments": {"id": {"any_": [deployment_id]}},
            "limit": 50,
            "offset": 0,
            "sort": "EXPECTED_START_TIME_DESC",
        },
    )


def wait_for_new_run(
    api_url: str, deployment_id: str, before: set[str], timeout_s: float
) -> dict[str, Any]:
    """The flow run the click created (one that did not exist before it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = [run for run in flow_runs(api_url, deployment_id) if run["id"] not in before]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError(f"Quick run created no flow run within {timeout_s:.0f} s")


def wait_until_finished(api_url: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the flow run until it reaches a terminal state."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=30)
        response.raise_for_status()
        run = response.json()
        if run["state_type"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"flow run {run['name']} still {run['state_type']} after {timeout_s:.0f} s"
            )
        time.sleep(2)
