"""Batch gates: validate a batch against its Great Expectations suite and return the result.

Gates never raise on a failed expectation: they return a ``GateResult`` and the flow decides
(hold, quarantine, promote). Great Expectations is imported on the first gate of a process and
its ephemeral context, batch definitions and suites are kept in a module-level cache, so a warm
micro-batch loop pays the import once. GE has no Polars support: the suite's columns are handed
over as pandas through Arrow.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pyarrow as pa

from quality.suites import SUITE_COLUMNS, SUITES, GateParams, build_suite

#: How many unexpected values a failure detail quotes.
_QUOTED = 5
_QUOTE_CHARS = 120


class Failure(NamedTuple):
    """One failed expectation: its type, its column (if any), what was observed and — when the
    gate was asked ``with_rows`` — the positions of the batch's rows it flagged (empty for
    expectations about the whole batch)."""

    expectation: str
    column: str | None
    observed: str
    rows: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """``expectation_type(column)``, for messages and quarantine details."""
        return f"{self.expectation}({self.column or ''})"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate. ``raw`` is GE's validation result as JSON (for Data Docs)."""

    suite: str
    success: bool
    evaluated_expectations: int
    failed: list[Failure]
    rows: int
    validated_at: datetime
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def failed_expectations(self) -> list[str]:
        """``"expectation_type(column)"`` of each failure, for messages."""
        return [f.name for f in self.failed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no raw GE result) for run artifacts."""
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated_expectations": self.evaluated_expectations,
            "failed": [{**f._asdict(), "rows": len(f.rows)} for f in self.failed],
            "rows": self.rows,
            "validated_at": self.validated_at.isoformat(),
        }


class _Runtime:
    """One ephemeral GE context with a pandas batch definition and a suite per table."""

    def __init__(self) -> None:
        # lazy: `import great_expectations` takes 5.4 s (python -X importtime), once per process
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        _no_fingerprints()
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        source = self.context.data_sources.add_pandas("lakehouse")
        self.batches = {
            name: source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            for name in SUITES
        }
        self.suites = {name: self.context.suites.add(build_suite(name)) for name in SUITES}


def _no_fingerprints() -> None:
    """Stop GE from hashing every value of a batch under 1 GB for a ``pandas_data_fingerprint``
    batch marker that nothing here reads: it was 0.7 s of the 0.8 s a 100,000-delivery bronze
    gate took (its payloads are 180 MB). GE has no setting for it, only this module constant."""
    # lazy: `import great_expectations` takes 5.4 s (python -X importtime)
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


_runtime: _Runtime | None = None
_lock = threading.Lock()
#: One validation at a time: the micro-batch loop gates silver and gold from different threads,
#: and GE's context is not documented as thread-safe (a validation takes 0.1-0.4 s).
_validating = threading.Lock()


def _get_runtime() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _Runtime()
        return _runtime


def warm_up() -> None:
    """Import GE and build the suites now (e.g. when a worker starts), not on the first batch."""
    _get_runtime()


def _to_pandas(batch: pl.DataFrame | pa.Table, columns: tuple[str, ...]) -> Any:
    frame = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"batch lacks the columns {missing} its suite checks")
    # one chunk per column: GE's pandas checks run about twice as fast as on ten chunks
    return frame.select(columns).rechunk().to_arrow().to_pandas()


def _observed(result: Any) -> str:
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"exception: {result.exception_info.get('exception_message')}"
    details = result.result or {}
    if "observed_value" in details:
        return f"observed {details['observed_value']!r}"
    values = (details.get("partial_unexpected_list") or [])[:_QUOTED]
    quoted = [str(v)[:_QUOTE_CHARS] for v in values]
    return f"{details.get('unexpected_count')} unexpected, e.g. {quoted}"


def _column(kwargs: dict[str, Any]) -> str | None:
    return kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or None


def _failures(validation: Any) -> list[Failure]:
    return [
        Failure(
            expectation=r.expectation_config.type,
            column=_column(r.expectation_config.kwargs),
            observed=_observed(r),
            rows=tuple(int(i) for i in (r.result or {}).get("unexpected_index_list") or ()),
        )
        for r in validation.results
        if not r.success
    ]


def gate(
    batch: pl.DataFrame | pa.Table,
    suite_name: str,
    params: GateParams | None = None,
    *,
    with_rows: bool = False,
) -> GateResult:
    """Validate ``batch`` against the suite ``suite_name``; never raises on failed expectations
    (a batch without the columns its suite checks raises ``KeyError``: that is a code bug).

    ``with_rows`` lists, in each failure, every row of the batch it flagged (GE's ``COMPLETE``
    result format: an operator splitting a held batch needs them; a normal run does not)."""
    if suite_name not in SUITES:
        raise KeyError(f"unknown suite {suite_name!r}; one of {sorted(SUITES)}")
    runtime = _get_runtime()
    frame = _to_pandas(batch, SUITE_COLUMNS[suite_name])
    parameters = (params or GateParams()).suite_parameters()
    result_format = {"result_format": "COMPLETE" if with_rows else "SUMMARY"}  # SUMMARY: GE default
    with _validating:
        validation = (
            runtime.batches[suite_name]
            .get_batch(batch_parameters={"dataframe": frame})
            .validate(
                runtime.suites[suite_name],
                expectation_parameters=parameters,
                result_format=result_format,
            )
        )
    return GateResult(
        suite=suite_name,
        success=bool(validation.success),
        evaluated_expectations=len(validation.results),
        failed=_failures(validation),
        rows=len(frame),
        validated_at=datetime.now(UTC),
        raw=validation.to_json_dict(),
    )


def _render_html(result: GateResult) -> str:
    if not result.raw:
        return f"<html><body><pre>{html.escape(json.dumps(result.to_dict(), indent=2))}</pre>"
    # lazy: `import great_expectations` takes 5.4 s (python -X importtime)
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResultSchema,
    )
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    validation = ExpectationSuiteValidationResultSchema().load(result.raw)
    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(validation))


def _index_html(summaries: list[tuple[str, dict[str, Any]]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(s['validated_at'])}</td><td>{html.escape(s['suite'])}</td>"
        f"<td>{'passed' if s['success'] else 'FAILED'}</td><td>{s['rows']}</td>"
        f"<td>{html.escape(', '.join(f['expectation'] for f in s['failed']))}</td>"
        f'<td><a href="{html.escape(stem)}.html">result</a></td></tr>'
        for stem, s in summaries
    )
    head = "<tr><th>validated at</th><th>suite</th><th>gate</th><th>rows</th><th>failed</th></tr>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Lakehouse gates</title></head>"
        f"<body><h1>Gate results (newest first)</h1><table>{head}{rows}</table></body></html>"
    )


def build_data_docs(results: Iterable[GateResult], folder: Path | str, *, keep: int = 200) -> Path:
    """Write each result as an HTML page (GE's validation renderer) plus a JSON summary into
    ``folder``, keep the newest ``keep`` results (older pages are deleted, so Data Docs stay
    fast), and rewrite ``index.html``. Returns the index path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        stem = f"{result.validated_at:%Y%m%dT%H%M%S%fZ}-{result.suite}"
        (folder / f"{stem}.html").write_text(_render_html(result), encoding="utf-8")
        (folder / f"{stem}.json").write_text(json.dumps(result.to_dict()), encoding="utf-8")
    summaries = sorted(folder.glob("*.json"), reverse=True)
    for stale in summaries[keep:]:
        stale.unlink()
        stale.with_suffix(".html").unlink(missing_ok=True)
    kept = [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in summaries[:keep]]
    index = folder / "index.html"
    index.write_text(_index_html(kept), encoding="utf-8")
    return index
