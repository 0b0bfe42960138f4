"""The warm per-process context the stages share: catalog, tables, the appends this process just
made, and the broker reader, built once (``warm_lakehouse``) and not per batch."""

from __future__ import annotations

import pyarrow as pa

from flows.report import RunTotals
from ingest.consumer import BatchReader
from ingest.reader_process import ReaderProcess
from quality import gates
from settings import Settings, get_settings
from warehouse import tables as T
from warehouse import watermarks
from warehouse.catalog import ensure_tables, get_catalog
from warehouse.io import Table
from warehouse.recent import RecentAppends


class Lakehouse:
    """The catalog, every table, recent appends and (on first use) the broker reader."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.catalog = get_catalog(self.settings)
        self.tables = ensure_tables(self.catalog)
        self._reader: BatchReader | ReaderProcess | None = None
        self.recent = RecentAppends()  # batches just committed, for the next stage to read

    def table(self, spec: T.TableSpec) -> Table:
        return self.tables[spec.identifier_str]

    def append(self, spec: T.TableSpec, rows: pa.Table, summary: dict[str, str]) -> int:
        """One append commit, remembered for the next stage (``RecentAppends.append``)."""
        return self.recent.append(self.table(spec), rows, summary)

    def appended_since(
        self, spec: T.TableSpec, after: int | None, columns: tuple[str, ...] | None = None
    ) -> tuple[pa.Table, int | None, list[int]]:
        """Rows appended to ``spec`` after snapshot ``after`` (from memory when this process
        appended them), the new watermark, and the snapshot ids served from memory."""
        return self.recent.appended_since(self.table(spec), after, columns)

    def refresh(self) -> None:
        for table in self.tables.values():
            table.refresh()

    def recorded_offsets(self) -> dict[str, int]:
        """Where bronze stopped, per topic-partition (the reader starts there)."""
        return watermarks.recorded_offsets(self.table(T.BRONZE_WEBHOOK_EVENTS))

    @property
    def reader(self) -> BatchReader | ReaderProcess:
        if self._reader is None:
            kind = ReaderProcess if self.settings.consumer_process else BatchReader
            self._reader = kind(
                self.settings.kafka_client_config(),
                self.settings.consumer_group,
                recorded_offsets=self.recorded_offsets,
                session_timeout_ms=self.settings.consumer_session_timeout_ms,
                instance_id=self.settings.consumer_instance_id,
            )
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


_LAKEHOUSE: Lakehouse | None = None


def warm_lakehouse() -> Lakehouse:
    """One context per process: a warm loop pays imports and setup once."""
    global _LAKEHOUSE
    if _LAKEHOUSE is None:
        gates.warm_up()  # Great Expectations' import and suites: once per process, not per batch
        _LAKEHOUSE = Lakehouse()
    else:
        _LAKEHOUSE.refresh()
    return _LAKEHOUSE


def publish_data_docs(totals: RunTotals, lh: Lakehouse) -> str | None:
    """Write the run's gate results to Data Docs (bounded history); return the index path."""
    results = [r for r in totals.gate_results.values() if r is not None]
    return str(gates.build_data_docs(results, lh.settings.data_docs_dir)) if results else None
