"""``reconcile``: the provider's events of a window against bronze, the missing ones sent through
the topics as webhooks are, and what was found recorded in ``gold.reconciliation``.

1. List the window's events with Stripe's Events API (``ingest.stripe_events``): completely, or
   the run fails here having sent nothing and written nothing.
2. Look their ids up in bronze, in the partitions a delivery of them can be in
   (``warehouse.reconciliation``), and in what earlier runs sent.
3. Send the missing ones (``ingest.recovery``: ``build_message`` with ``source:
   reconciliation``, idempotent producer, acknowledged) unless it is a dry run.
4. Append one row per UTC day of the window (``transforms.reconciliation``) in one commit, and
   publish them as the run's artifact.

Idempotent: a later run over the same window finds the recovered events in bronze once the loader
landed them, and before that finds them recorded as sent in ``gold.reconciliation``
(``recovered_earlier``), so it sends nothing again. A run that dies between the broker's
acknowledgement and its own commit leaves no row: the next run sends those events again, bronze
holds two deliveries, and silver keeps one (dedup by event id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_table_artifact

from flows.context import Lakehouse
from ingest import recovery, stripe_events
from settings import Settings
from settings.names import LISTING_ALL, LISTING_DELIVERY_FAILED, PROVIDER_STRIPE
from transforms import reconciliation as recon
from warehouse import io
from warehouse import reconciliation as reads
from warehouse import tables as T

#: Default window end: events younger than this may still be on their first delivery.
SETTLE = timedelta(minutes=15)
#: Default window length: Stripe retries a failed delivery for up to three days.
LOOKBACK_HOURS = 72.0
COUNTS = ("provider_events", "in_bronze", "recovered_earlier", "recovered", "still_missing")


class RecoveryIncomplete(RuntimeError):
    """The broker refused some recovered events; the run's rows say which are still missing."""


@dataclass
class Reconciled:
    """A run's ``gold.reconciliation`` rows and the events the broker refused."""

    rows: pl.DataFrame
    refused: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        first = self.rows.row(0, named=True)
        return {
            "run_id": first["run_id"],
            "window": [first["window_start"].isoformat(), first["window_end"].isoformat()],
            "listing": first["listing"],
            "dry_run": first["dry_run"],
            **{c: int(self.rows[c].sum()) for c in COUNTS},
            "refused_by_broker": len(self.refused),
        }

    def per_day(self) -> list[dict[str, Any]]:
        """The rows without the id lists, as text where JSON needs it (artifact, CLI)."""
        return [
            {"day": str(row["day"]), **{c: row[c] for c in COUNTS}}
            for row in self.rows.iter_rows(named=True)
        ]

    def raise_if_incomplete(self) -> None:
        if self.refused:
            sample = ", ".join(f"{k}: {v}" for k, v in list(self.refused.items())[:3])
            raise RecoveryIncomplete(
                f"the broker did not acknowledge {len(self.refused)} recovered events ({sample});"
                " they are counted as still missing and the next run sends them again"
            )


def window_of(
    since: datetime | date | None, until: datetime | date | None, lookback_hours: float
) -> recon.Window:
    """The window of a run's parameters (dates and naive times are UTC), as of now."""
    lookback = timedelta(hours=lookback_hours)
    return recon.Window.of(since, until, now=datetime.now(UTC), lookback=lookback, settle=SETTLE)


def run_reconcile(
    window: recon.Window,
    *,
    failed_only: bool = False,
    dry_run: bool = False,
    run_id: str | None = None,
    lh: Lakehouse | None = None,
) -> Reconciled:
    """Reconcile ``window`` (steps in the module docstring); the rows it appended."""
    lh = lh or Lakehouse()
    settings, at, run_id = lh.settings, datetime.now(UTC), run_id or str(uuid.uuid4())
    events = pl.from_arrow(_list_events(settings, window, failed_only))
    tolerance = timedelta(seconds=settings.stripe_signature_tolerance_s)
    bronze, table = lh.table(T.BRONZE_WEBHOOK_EVENTS), lh.table(T.GOLD_RECONCILIATION)
    in_bronze = reads.event_ids_in_bronze(bronze, events["event_id"], window.start - tolerance)
    classified = recon.classify(events, in_bronze, reads.recovered_ids(table, window.days))
    missing = classified.filter(pl.col("status") == recon.MISSING)
    sent = recovery.Sent()
    if not dry_run and missing.height:
        sent = recovery.send_recovered(
            missing["body"],
            received_at=at,
            run_id=run_id,
            client_config=settings.kafka_client_config(),
            timeout_s=settings.reconcile_send_timeout_s,
        )
    listing = LISTING_DELIVERY_FAILED if failed_only else LISTING_ALL
    facts = recon.RunFacts(run_id, PROVIDER_STRIPE, listing, window, dry_run, at)
    rows = recon.reconciliation_rows(classified, sent.acknowledged, facts)
    io.append(table, rows.to_arrow(), summary={"lakehouse.reconcile-run": run_id})
    return Reconciled(rows, sent.failed)


def _list_events(settings: Settings, window: recon.Window, failed_only: bool) -> pa.Table:
    return stripe_events.list_events(
        stripe_events.events_client(settings),
        window.start,
        window.end,
        failed_only=failed_only,
        types=settings.stripe_event_types,
        rate_limit=stripe_events.RateLimitPolicy(
            settings.stripe_rate_limit_retries, settings.stripe_rate_limit_backoff_s
        ),
    )


@flow(name="reconcile")
def reconcile(
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_hours: float = LOOKBACK_HOURS,
    failed_deliveries_only: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Check the provider's events of a window against bronze and recover the missing ones."""
    window = window_of(since, until, lookback_hours)
    run_id = runtime.flow_run.id or str(uuid.uuid4())
    result = run_reconcile(
        window, failed_only=failed_deliveries_only, dry_run=dry_run, run_id=run_id
    )
    summary = result.summary()
    get_run_logger().info("reconcile: %s", summary)
    create_table_artifact(
        key="reconciliation",
        table=result.per_day(),
        description=f"Reconciliation of {summary['window'][0]} .. {summary['window'][1]} "
        f"({summary['listing']}{', dry run' if dry_run else ''}): per UTC day of event creation",
    )
    result.raise_if_incomplete()
    return summary
