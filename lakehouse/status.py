"""What ``lakehouse status`` reads: each part running or not, consumer lag per topic (the broker's
end offsets against the offsets bronze recorded), the freshness of every table, and a batch the
silver gates hold. Reads only: nothing is started and no catalog or table is created."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flows.silver import held_batch
from ingest.offsets import end_offsets, lag_per_topic
from ingest.topics import ALL_TOPICS
from lakehouse.broker import from_settings
from lakehouse.stack import services
from lakehouse.supervisor import running_pid
from quality.decisions import HeldBatch
from settings import Settings
from warehouse import queries, watermarks
from warehouse.catalog import get_catalog
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS


@dataclass(frozen=True)
class PartStatus:
    """One part of the stack as `lakehouse status` shows it."""

    name: str
    running: bool
    detail: str


def parts_status(settings: Settings) -> list[PartStatus]:
    """Each part: running or not, with its pid and whether its readiness check passes."""
    rows = [_broker_status(settings)]
    for svc in services(settings).values():
        pid = running_pid(svc)
        if pid is None:
            rows.append(PartStatus(svc.name, False, f"not running (log: {svc.log_file})"))
            continue
        ready = svc.ready is None or svc.ready()
        rows.append(PartStatus(svc.name, True, f"pid {pid}, {'ready' if ready else 'NOT ready'}"))
    return rows


def _broker_status(settings: Settings) -> PartStatus:
    if not settings.uses_embedded_broker:
        return PartStatus("broker", True, f"external: {settings.bootstrap_servers}")
    pid = from_settings().pid()
    if pid is None:
        return PartStatus("broker", False, "not running")
    return PartStatus("broker", True, f"pid {pid}, {settings.bootstrap_servers}")


def warehouse_exists(settings: Settings) -> bool:
    """False only when the default SQLite catalog has not been created yet."""
    return settings.catalog_uri is not None or (settings.home_abs / "catalog.db").exists()


def recorded_offsets(settings: Settings) -> dict[str, int] | None:
    """Bronze's recorded offsets ``{"topic:partition": next offset}``; None without bronze."""
    if not warehouse_exists(settings):
        return None
    bronze = queries.existing_table(get_catalog(settings), BRONZE_WEBHOOK_EVENTS)
    return None if bronze is None else watermarks.recorded_offsets(bronze)


def topic_lag(settings: Settings) -> dict[str, int]:
    """Consumer lag of bronze per topic, from the broker's end offsets (raises if it is down)."""
    ends = end_offsets(settings.kafka_client_config(), ALL_TOPICS)
    return lag_per_topic(ends, recorded_offsets(settings) or {})


def table_freshness(settings: Settings) -> dict[str, datetime | None]:
    """Per table: the time of its newest snapshot (None: created, never written; missing: not
    created yet)."""
    return queries.freshness(get_catalog(settings)) if warehouse_exists(settings) else {}


def silver_hold(settings: Settings) -> HeldBatch | None:
    """The batch silver's gates hold (recorded by the stage that held it), or None."""
    if not warehouse_exists(settings):
        return None
    silver = queries.existing_table(get_catalog(settings), SILVER_PAYMENT_EVENTS)
    return None if silver is None else held_batch(silver)
