"""The micro-batch stages as plain functions over a warm context: bronze, silver, gold.

Each stage is idempotent and resumable, and commits atomically per table:

- bronze: one Iceberg append per batch recording the next Kafka offsets in its snapshot summary,
  then the consumer-group commit (see ``ingest.consumer``);
- silver: reads bronze appended after its watermark (the bronze snapshot id kept in its own
  snapshot summary), gates the bronze batch and the events it yields, appends quarantine rows
  (deduplicated by delivery) and then the events (deduplicated by event id against the same days
  of silver) with the new watermark;
- gold: scores silver rows appended after the scores table's watermark, and rebuilds
  ``gold.merchant_daily`` for the days those rows touch.

A failed gate raises ``GateFailed``: nothing of that batch is promoted, the watermark stays, and the
next run retries it (or an operator decision releases it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from settings import Settings, get_settings
from warehouse import tables as T

log = logging.getLogger("lakehouse.pipeline")


class GateFailed(RuntimeError):
    """A Great Expectations gate held a batch back; the message names the failed expectations."""

    def __init__(self, result: Any) -> None:
        failed = ", ".join(result.failed_expectations)
        super().__init__(f"gate {result.suite} failed: {failed}; the batch is held")
        self.result = result


@dataclass
class StageReport:
    """What one stage did, for logs and the run artifact."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    not_modelled: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    oldest_unprocessed_age_s: float | None = None
    missing_models: list[str] = field(default_factory=list)
    seconds: float = 0.0
    gate_results: list[Any] = field(default_factory=list, repr=False)  # for Data Docs

    def add_gate(self, result: Any) -> None:
        """Record a gate's result (None: the batch was empty, nothing was gated)."""
        if result is not None:
            self.gate_results.append(result)

    @property
    def gates(self) -> list[dict[str, Any]]:
        """The gates' results as JSON-ready summaries."""
        return [result.to_dict() for result in self.gate_results]

    def as_dict(self) -> dict[str, Any]:
        fields_ = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "gate_results"}
        return {**fields_, "gates": self.gates}


class Lakehouse:
    """The warm per-process context: catalog, tables and the broker reader, built once."""

    def __init__(self, settings: Settings | None = None) -> None:
        from warehouse.catalog import get_catalog
        from warehouse.io import ensure_tables
        from warehouse.recent import RecentAppends

        self.settings = settings or get_settings()
        self.catalog = get_catalog(self.settings)
        self.tables = ensure_tables(self.catalog)
        self._reader = None
        self.recent = RecentAppends()  # batches just committed, for the next stage to read

    def append(self, spec: T.TableSpec, rows: pa.Table, summary: dict[str, str]) -> int:
        """One append commit (see ``warehouse.io.append``), remembered for the next stage."""
        from warehouse.io import append, conform

        table = self.table(spec)
        rows = conform(table, rows)
        snapshot_id = append(table, rows, summary=summary)
        self.recent.put(table, snapshot_id, rows)
        return snapshot_id

    def appended_since(
        self, spec: T.TableSpec, after: int | None, columns: tuple[str, ...] | None = None
    ) -> tuple[pa.Table, int | None, list[int]]:
        """Rows appended to ``spec`` after snapshot ``after`` (from memory when this process
        appended them), the new watermark, and the snapshot ids served from memory."""
        return self.recent.appended_since(self.table(spec), after, columns)

    def table(self, spec: T.TableSpec):
        return self.tables[spec.identifier_str]

    def refresh(self) -> None:
        for table in self.tables.values():
            table.refresh()

    def recorded_offsets(self) -> dict[str, int]:
        from warehouse.io import latest_summary_value

        raw = latest_summary_value(self.table(T.BRONZE_WEBHOOK_EVENTS), T.SUMMARY_OFFSETS)
        return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}

    @property
    def reader(self):
        if self._reader is None:
            from ingest.consumer import BatchReader
            from ingest.reader_process import ReaderProcess

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


def _timed(report: StageReport, started: float) -> StageReport:
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def load_bronze(lh: Lakehouse, max_records: int, max_seconds: float) -> StageReport:
    """Consume up to ``max_records``/``max_seconds`` into one bronze commit; then commit offsets."""
    started = time.perf_counter()
    batch = lh.reader.poll_batch(max_records, max_seconds)
    report = StageReport("bronze", rows_in=batch.size, lag=lh.reader.lag())
    if batch.size == 0:
        return _timed(report, started)
    offsets = {**lh.recorded_offsets(), **batch.next_offsets}
    lh.append(
        T.BRONZE_WEBHOOK_EVENTS,
        batch.rows,
        summary={T.SUMMARY_OFFSETS: json.dumps(offsets, sort_keys=True)},
    )
    lh.reader.commit(batch.next_offsets)
    report.rows_out = batch.size
    oldest = pa.compute.min(batch.rows["received_at"]).as_py()
    report.oldest_unprocessed_age_s = round((datetime.now(UTC) - oldest).total_seconds(), 3)
    return _timed(report, started)


def watermark(table, key: str = T.SUMMARY_SOURCE_SNAPSHOT) -> int | None:
    from warehouse.io import latest_summary_value

    raw = latest_summary_value(table, key)
    return int(raw) if raw else None


def seen_event_ids(silver, events: pl.DataFrame) -> pl.Series:
    """Event ids already in silver, looked up only in the days the batch touches.

    A provider's retry of an event carries the same ``created``, so duplicates always fall on the
    same ``provider_created_at`` day: the lookup is bounded by the batch's days, not the table.
    """
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from warehouse.io import scan

    if events.is_empty() or silver.current_snapshot() is None:
        return pl.Series("event_id", [], pl.String)
    lo = events["provider_created_at"].min()  # a retry has the same created: no wider window
    hi = events["provider_created_at"].max() + timedelta(microseconds=1)
    found = scan(
        silver,
        row_filter=And(
            GreaterThanOrEqual("provider_created_at", lo.isoformat()),
            LessThan("provider_created_at", hi.isoformat()),
        ),
        columns=("event_id",),
    )
    return (
        pl.from_arrow(found)["event_id"] if found.num_rows else pl.Series("event_id", [], pl.String)
    )


def _new_quarantine(quarantine_table, rows: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows not yet recorded (a re-run after a crash must not add them twice)."""
    from pyiceberg.expressions import In

    from warehouse.io import scan

    if rows.is_empty() or quarantine_table.current_snapshot() is None:
        return rows
    ids = rows["quarantine_id"].to_list()
    existing = scan(
        quarantine_table, row_filter=In("quarantine_id", ids), columns=("quarantine_id",)
    )
    if existing.num_rows == 0:
        return rows
    return rows.filter(~pl.col("quarantine_id").is_in(pl.from_arrow(existing)["quarantine_id"]))


@dataclass(frozen=True)
class HeldBatchDecision:
    """An operator's decision on a batch a gate holds: accept it, or quarantine it whole."""

    action: str  # "accept" | "quarantine"
    by: str
    reason: str

    def __post_init__(self) -> None:
        if self.action not in ("accept", "quarantine"):
            raise ValueError(f"decision must be accept or quarantine, not {self.action!r}")
        if not self.by.strip() or not self.reason.strip():
            raise ValueError("a decision on a held batch needs who (by) and why (reason)")

    @property
    def note(self) -> str:
        return f"{self.action} by {self.by}: {self.reason}"


def run_gate(frame: pl.DataFrame, suite: str, params: Any = None, *, hold: bool = False) -> Any:
    """The gate's result for a non-empty batch (None for an empty one: nothing to promote).

    With ``hold`` the caller handles a failure; otherwise a failure raises ``GateFailed``.
    """
    from quality.gates import gate

    if frame.is_empty():
        return None
    result = gate(frame, suite, params)
    if not result.success and not hold:
        raise GateFailed(result)
    return result


def split_bronze(lh: Lakehouse, bronze: pl.DataFrame, processed_at: datetime) -> Any:
    """Bronze rows → silver events, quarantine rows, not-modelled rows (row contract applied)."""
    from quality.contracts import check_rows
    from transforms.events import to_silver

    return to_silver(
        bronze,
        processed_at=processed_at,
        row_contract=check_rows,
        amount_max_major=lh.settings.amount_max_major,
    )


def gate_params(settings: Settings) -> Any:
    from quality.gates import GateParams

    return GateParams(max_age_days=settings.gate_max_event_age_days)


def promote_silver(lh: Lakehouse, decision: HeldBatchDecision | None = None) -> StageReport:
    """Bronze rows after silver's watermark → quarantine + deduplicated, gated silver events.

    Two gates: the bronze batch (``bronze_webhook_events``: one row per delivery, known topics,
    a payload) and the events it yields (``silver_payment_events``). A failed gate raises
    ``GateFailed`` and commits nothing, unless an operator's ``decision``
    accepts the batch or quarantines it whole (code ``GATE_REJECTED``); the decision is recorded
    in the snapshot summary of the commits it makes.
    """
    from transforms.events import drop_seen
    from warehouse.io import append

    started = time.perf_counter()
    silver, quarantine = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.SILVER_QUARANTINE)
    bronze = lh.table(T.BRONZE_WEBHOOK_EVENTS)
    new, new_wm, held = lh.appended_since(T.BRONZE_WEBHOOK_EVENTS, watermark(silver))
    report = StageReport("silver", rows_in=new.num_rows)
    if new.num_rows == 0:
        return _timed(report, started)
    now = datetime.now(UTC)
    deliveries = pl.from_arrow(new)
    arrived = run_gate(deliveries, "bronze_webhook_events", hold=True)
    split = split_bronze(lh, deliveries, now)
    events, dropped = drop_seen(split.events, seen_event_ids(silver, split.events))
    promoted = run_gate(events, "silver_payment_events", gate_params(lh.settings), hold=True)
    report.add_gate(arrived)
    report.add_gate(promoted)
    summary = {T.SUMMARY_SOURCE_SNAPSHOT: str(new_wm)}
    rejected = split.quarantine
    failed = next((r for r in (arrived, promoted) if r is not None and not r.success), None)
    if failed is not None:
        if decision is None:
            raise GateFailed(failed)
        summary["lakehouse.held-batch-decision"] = decision.note
        if decision.action == "quarantine":
            rejected = pl.concat([rejected, _reject_whole(new, events, failed, now)])
            events = events.clear()
    append(quarantine, _new_quarantine(quarantine, rejected).to_arrow(), summary=summary)
    lh.append(T.SILVER_PAYMENT_EVENTS, events.to_arrow(), summary=summary)
    lh.recent.release(bronze, held)  # silver is the only reader of bronze batches
    report.rows_out = events.height
    report.duplicates = dropped + split.duplicates_in_batch
    report.not_modelled = split.not_modelled.height
    report.quarantined = dict(rejected.group_by("error_code").len().iter_rows())
    return _timed(report, started)


def _reject_whole(bronze: pa.Table, events: pl.DataFrame, result: Any, now: datetime):
    """Quarantine rows (code GATE_REJECTED) for the events of a batch an operator rejected."""
    failed = "; ".join(result.failed_expectations)
    rejected = events["delivery_id"].implode()
    rows = pl.from_arrow(bronze).filter(pl.col("delivery_id").is_in(rejected))
    rows = rows.unique("delivery_id", keep="first", maintain_order=True)  # one row per delivery
    return rows.select(
        quarantine_id=pl.lit("silver:") + pl.col("delivery_id"),
        delivery_id="delivery_id",
        layer=pl.lit("silver"),
        error_code=pl.lit("GATE_REJECTED"),
        error_detail=pl.lit(f"gate {result.suite} failed: {failed}"),
        event_id="event_id",
        event_type="event_type",
        payload="payload",
        topic="topic",
        partition="partition",
        offset="offset",
        received_at="received_at",
        quarantined_at=pl.lit(now),
        released_at=pl.lit(None, pl.Datetime("us", "UTC")),
        released_by=pl.lit(None, pl.String),
    )


def advance_watermark(table, old: int | None, new: int | None) -> None:
    """Record that the source's newest snapshots held no rows (an empty commit), so that readers
    of the watermark see this layer caught up and the next read starts after them."""
    from warehouse.io import append

    if new is not None and new != old:
        empty = pa.Table.from_pylist([], schema=table.schema().as_arrow())
        append(table, empty, summary={T.SUMMARY_SOURCE_SNAPSHOT: str(new)})


SCORED_MODELS = ("payments-fraud", "payments-retry", "payments-churn")
HISTORY_DAYS = 35


def history_for(silver, events: pl.DataFrame) -> pl.DataFrame:
    """Silver rows from ``HISTORY_DAYS`` before the batch up to its end (features look back)."""
    from pyiceberg.expressions import GreaterThanOrEqual

    from ml.features import INPUT_COLUMNS
    from warehouse.io import scan

    since = events["provider_created_at"].min() - timedelta(days=HISTORY_DAYS)
    present = set(silver.schema().column_names)
    rows = scan(
        silver,
        row_filter=GreaterThanOrEqual("provider_created_at", since.isoformat()),
        columns=[c for c in INPUT_COLUMNS if c in present],  # only what features read
    )
    return pl.from_arrow(rows)


def champions() -> dict[str, Any]:
    from ml.registry import load_champion

    return {name: load_champion(name) for name in SCORED_MODELS}


def score_gold(lh: Lakehouse) -> StageReport:
    """Silver rows after the scores' watermark → one score row per eligible event."""
    from ml.scoring import score_events
    from warehouse.io import append

    started = time.perf_counter()
    scores_table = lh.table(T.GOLD_PAYMENT_SCORES)
    silver = lh.table(T.SILVER_PAYMENT_EVENTS)
    old_wm = watermark(scores_table)
    new, new_wm, _ = lh.appended_since(T.SILVER_PAYMENT_EVENTS, old_wm)
    report = StageReport("gold.payment_scores", rows_in=new.num_rows)
    if new.num_rows == 0:
        advance_watermark(scores_table, old_wm, new_wm)
        return _timed(report, started)
    events = pl.from_arrow(new)
    models = champions()
    # without a registered model every score is null: the 35 days of history are not needed
    history = history_for(silver, events) if any(m is not None for m in models.values()) else None
    result = score_events(events, history, models, scored_at=datetime.now(UTC))
    report.missing_models = list(result.missing_models)
    report.add_gate(run_gate(result.scores, "gold_payment_scores"))
    append(scores_table, result.scores.to_arrow(), summary={T.SUMMARY_SOURCE_SNAPSHOT: str(new_wm)})
    report.rows_out = result.scores.height
    return _timed(report, started)


def rebuild_merchant_daily(lh: Lakehouse) -> StageReport:
    """Rebuild ``gold.merchant_daily`` for every day touched by silver rows after its watermark."""
    started = time.perf_counter()
    daily = lh.table(T.GOLD_MERCHANT_DAILY)
    old_wm = watermark(daily)
    new, new_wm, _ = lh.appended_since(
        T.SILVER_PAYMENT_EVENTS, old_wm, columns=("provider_created_at",)
    )
    report = StageReport("gold.merchant_daily", rows_in=new.num_rows)
    if new.num_rows == 0:
        advance_watermark(daily, old_wm, new_wm)
        return _timed(report, started)
    days = pl.from_arrow(new)["provider_created_at"].dt.date().unique().to_list()
    rows, checked = rebuild_days(lh, days, summary={T.SUMMARY_SOURCE_SNAPSHOT: str(new_wm)})
    report.add_gate(checked)
    report.rows_out = rows
    return _timed(report, started)


#: The silver columns ``transforms.merchant_daily`` reads.
DAILY_COLUMNS = (
    "event_id",
    "event_type",
    "merchant_id",
    "currency",
    "amount_minor",
    "amount",
    "provider_created_at",
)


def rebuild_days(lh: Lakehouse, days: list, summary: dict[str, str]) -> tuple[int, Any]:
    """Recompute ``gold.merchant_daily`` for these UTC days from silver and scores, one commit."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThan

    from transforms.merchant_daily import merchant_daily
    from warehouse.io import replace_partition, scan

    days = sorted(days)
    lo = datetime.combine(days[0], datetime.min.time(), UTC)
    hi = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1)
    window = And(
        GreaterThanOrEqual("provider_created_at", lo.isoformat()),
        LessThan("provider_created_at", hi.isoformat()),
    )
    silver, scores = lh.table(T.SILVER_PAYMENT_EVENTS), lh.table(T.GOLD_PAYMENT_SCORES)
    events = pl.from_arrow(scan(silver, row_filter=window, columns=DAILY_COLUMNS))
    events = events.filter(pl.col("provider_created_at").dt.date().is_in(days))
    day_scores = pl.from_arrow(scan(scores, row_filter=window, columns=("event_id", "fraud_score")))
    rows = merchant_daily(events, day_scores, updated_at=datetime.now(UTC))
    checked = run_gate(rows, "gold_merchant_daily")
    replace_partition(
        lh.table(T.GOLD_MERCHANT_DAILY),
        rows.to_arrow(),
        row_filter=In("day", [d.isoformat() for d in days]),
        summary=summary,
    )
    return rows.height, checked
