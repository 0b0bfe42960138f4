"""Every analyst notebook runs top to bottom, on the demo warehouse and on an empty lakehouse.

The notebooks run in one kernel (started once: its imports take most of the time), each after
``%reset -f``, with ``LAKEHOUSE_HOME`` pointed at the warehouse of the pass. A cell appended to each
notebook prints its ``takeaway`` dict as JSON for the assertions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

if TYPE_CHECKING:
    from tests.notebooks.conftest import DemoWarehouse


REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NAMES = [path.stem for path in NOTEBOOKS]
RESULT = "NOTEBOOK-TAKEAWAY "
SKIPPED = "Plot skipped"


@dataclass
class Executed:
    """One notebook's cells after execution, and what they showed."""

    cells: list

    def outputs(self, kind: str | None = None) -> list[dict]:
        return [
            out
            for cell in self.cells
            for out in cell.get("outputs", [])
            if kind is None or out["output_type"] == kind
        ]

    @property
    def errors(self) -> list[str]:
        return [f"{o['ename']}: {o['evalue']}" for o in self.outputs("error")]

    @property
    def text(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs("stream"))

    @property
    def images(self) -> int:
        return sum("image/png" in o.get("data", {}) for o in self.outputs("display_data"))

    @property
    def takeaway(self) -> dict:
        line = next(line for line in self.text.splitlines() if line.startswith(RESULT))
        return json.loads(line.removeprefix(RESULT))


def _pass(home: Path) -> list:
    """The cells that start a pass: a clean namespace and settings pointing at ``home``."""
    return [
        nbformat.v4.new_code_cell(
            "%reset -f\n"
            "import os\n"
            f"os.environ['LAKEHOUSE_HOME'] = {str(home)!r}\n"
            "from settings import get_settings\n"
            "get_settings.cache_clear()\n"
            "del os, get_settings"
        )
    ]


def _combined(passes: dict[str, Path]) -> tuple[nbformat.NotebookNode, dict]:
    """One notebook running every notebook once per pass; the cell span of each."""
    combined = nbformat.v4.new_notebook()
    combined.metadata = nbformat.read(NOTEBOOKS[0], as_version=4).metadata
    spans = {}
    for name, home in passes.items():
        for path in NOTEBOOKS:
            cells = [*_pass(home), *nbformat.read(path, as_version=4).cells]
            cells.append(
                nbformat.v4.new_code_cell(
                    f"import json\nprint({RESULT!r} + json.dumps(takeaway, default=str))"
                )
            )
            start = len(combined.cells)
            combined.cells.extend(cells)
            spans[name, path.stem] = slice(start, len(combined.cells))
    return combined, spans


#: Imported by the kernel while the demo warehouse is being built (they take most of a run).
WARM_UP = "import duckdb, matplotlib.pyplot, pandas, sql.magic, warehouse.catalog, warehouse.duck"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsyncKernelManager]:
    """A python3 kernel of the venv, started (and importing) before the demo is built.

    Its working directory has no ``.env``; the outside ``LAKEHOUSE_*`` variables are dropped.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.pop("MPLBACKEND", None)  # inline plots
    env["PLOOMBER_STATS_ENABLED"] = "false"  # jupysql: no usage statistics
    km = AsyncKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(cwd=str(tmp_path_factory.mktemp("notebooks-kernel")), env=env)
    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=120)
        client.execute(WARM_UP, silent=True)  # runs while the demo warehouse is built
        yield km
    finally:
        client.stop_channels()
        run_sync(km.shutdown_kernel)(now=True)


@pytest.fixture(scope="module")
def executed(
    kernel: AsyncKernelManager,
    demo_warehouse: DemoWarehouse,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], Executed]:
    """Every notebook run on the demo warehouse, then on an empty lakehouse, in one kernel."""
    empty = tmp_path_factory.mktemp("notebooks-empty") / "lakehouse-home"
    notebook, spans = _combined({"demo": demo_warehouse.home, "empty": empty})
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=180,
        allow_errors=True,  # every notebook runs; each test reports its own errors
    )
    try:
        client.execute()
    finally:
        if client.kc is not None:  # the kernel is not the client's: it leaves its channels open
            client.kc.stop_channels()
    return {key: Executed(notebook.cells[span]) for key, span in spans.items()}


def test_committed_notebooks_are_clean() -> None:
    assert len(NOTEBOOKS) == 6
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        assert "con = connect()" in code[0].source
        assert "takeaway = {" in code[-1].source, path.name
        assert nb.cells[-1].cell_type == "markdown", path.name


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_demo_warehouse(executed, name: str) -> None:
    run = executed["demo", name]
    assert not run.errors, run.errors
    assert run.images >= 1 and SKIPPED not in run.text


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_an_empty_lakehouse(executed, name: str) -> None:
    run = executed["empty", name]
    assert not run.errors, run.errors
    assert run.images == 0 and SKIPPED in run.text
    assert run.takeaway


@pytest.mark.integration
def test_payment_volume(executed) -> None:
    t = executed["demo", "01_payment_volume"].takeaway
    assert t["currencies"] >= 2 and t["merchants"] >= 5 and t["payment_intents"] > 100
    assert 0.5 < t["success_rate"] < 1


@pytest.mark.integration
def test_declines_and_retries(executed) -> None:
    t = executed["demo", "02_declines_and_retries"].takeaway
    assert t["failed_payments"] > 20 and t["decline_codes"] >= 4 and 0 < t["failure_rate"] < 0.5
    assert 0 < t["scored_failures"] < t["failed_payments"]  # the first days have no champion


@pytest.mark.integration
def test_fraud_scores(executed) -> None:
    t = executed["demo", "03_fraud_scores"].takeaway
    assert 0 < t["scored"] < t["charges"] and t["fraudulent_disputes"] > 0
    assert t["mean_score_fraudulent"] is not None and t["top_two_deciles_share"] is not None


@pytest.mark.integration
def test_churn_cohorts(executed) -> None:
    t = executed["demo", "04_churn_cohorts"].takeaway
    assert 0 < t["scored_customers"] <= t["customers"] and len(t["cohorts"]) >= 2


@pytest.mark.integration
def test_quarantine(executed, demo_warehouse: DemoWarehouse) -> None:
    t = executed["demo", "05_quarantine"].takeaway
    assert t["quarantined"] == t["still_held"] == demo_warehouse.malformed
    assert len(t["error_codes"]) >= 6 and t["days"] >= 1


@pytest.mark.integration
def test_time_travel(executed, demo_warehouse: DemoWarehouse) -> None:
    t = executed["demo", "06_time_travel"].takeaway
    demo = demo_warehouse
    assert t["snapshots"] >= 2
    assert 0 < t["then"]["silver_events"] == t["as_of_rows"] < t["now"]["silver_events"]
    assert t["now"]["silver_events"] == demo.events
    assert t["now"]["bronze_deliveries"] == demo.events + demo.malformed + demo.redelivered
    assert t["then"]["bronze_deliveries"] < t["now"]["bronze_deliveries"]
