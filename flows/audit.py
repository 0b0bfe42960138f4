"""``lakehouse audit``: completeness, proved layer by layer (``docs/architecture.md``, "No event
lost, none counted twice"). Reads only; run it at any time, beside the loaders.

Each section gathers its figures (the broker's end offsets, bronze's recorded offsets, DuckDB over
the tables: ``warehouse.audit_queries``) and hands them to the comparisons of ``warehouse.audit``:

1. broker offsets vs bronze, per topic-partition: every offset from where bronze began reading
   it up to the offset it recorded is in bronze exactly once (missing and doubled ranges named);
2. per day, bronze = silver + quarantine + duplicates + not modelled, up to silver's watermark,
   and silver holds each event once;
3. silver vs gold: every eligible silver event up to the scores' watermark scored once, and
   ``gold.merchant_daily``'s sums equal silver's for every day gold has caught up with (both by
   gold's own rules: ``transforms.merchant_daily.for_gold``, live events unless configured).

4. the last reconciliation with the provider of each day (``gold.reconciliation``): events the
   provider listed that are in neither bronze nor sent are missing.

``SECTIONS`` is the list the report is made of: a later check is one more function returning a
``Section``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from ingest.offsets import end_offsets
from ingest.topics import ALL_TOPICS
from ml.scoring import ELIGIBLE_TYPES
from settings import Settings, get_settings
from transforms.merchant_daily import EVENT_COLUMNS, KEYS, for_gold, merchant_daily
from transforms.normalize import EVENT_TYPES
from warehouse import audit, audit_queries, reconciliation, watermarks
from warehouse import tables as T
from warehouse.catalog import Catalog, get_catalog
from warehouse.duck import connect
from warehouse.io import Table
from warehouse.queries import existing_table


@dataclass
class Audited:
    """What the sections read: the settings, the tables that exist, one DuckDB connection."""

    settings: Settings
    catalog: Catalog
    con: duckdb.DuckDBPyConnection
    tables: dict[str, Table] = field(default_factory=dict)

    def table(self, spec: T.TableSpec) -> Table | None:
        return self.tables.get(spec.identifier_str)


Check = Callable[[Audited], audit.Section]


def broker_section(done: Audited) -> audit.Section:
    """Broker end offsets vs bronze, per topic-partition."""
    bronze = done.table(T.BRONZE_WEBHOOK_EVENTS)
    found = audit_queries.bronze_offsets(done.con)
    recorded = watermarks.recorded_offsets(bronze) if bronze else {}
    # a table written before first offsets were recorded: from its lowest row
    first = {k: s.lowest for k, s in found.stats.items()}
    first |= watermarks.first_offsets(bronze) if bronze else {}
    try:
        ends = end_offsets(done.settings.kafka_client_config(), ALL_TOPICS)
    except Exception as exc:  # noqa: BLE001 - reported: the offsets cannot be checked
        section = audit.broker_vs_bronze({}, first, recorded, found.stats, found.gaps, {})
        problem = f"the broker did not answer ({exc}): offsets were not checked against it"
        return audit.Section(section.title, section.columns, section.rows, (problem,))
    return audit.broker_vs_bronze(ends, first, recorded, found.stats, found.gaps, found.doubled)


def bronze_section(done: Audited) -> audit.Section:
    """Per day: bronze = silver + quarantine + duplicates + not modelled."""
    bronze, silver = done.table(T.BRONZE_WEBHOOK_EVENTS), done.table(T.SILVER_PAYMENT_EVENTS)
    if bronze is None:
        return audit.bronze_accounting([], [])
    mark = watermarks.watermark(silver) if silver else None
    days = audit_queries.bronze_days(done.con, bronze, mark, list(EVENT_TYPES))
    return audit.bronze_accounting(days, audit_queries.silver_doubled(done.con))


def gold_section(done: Audited) -> audit.Section:
    """Silver vs gold: scores and ``gold.merchant_daily``."""
    silver = done.table(T.SILVER_PAYMENT_EVENTS)
    scores, daily = done.table(T.GOLD_PAYMENT_SCORES), done.table(T.GOLD_MERCHANT_DAILY)
    if silver is None:
        return audit.silver_vs_gold([], [], [])
    test_mode = done.settings.gold_include_test_mode  # gold's rule: live events only, by default
    scores_mark = watermarks.watermark(scores) if scores else None
    days = audit_queries.score_days(done.con, silver, scores_mark, ELIGIBLE_TYPES, test_mode)
    daily_mark = watermarks.watermark(daily) if daily else None
    pending = audit_queries.daily_pending_days(done.con, silver, daily_mark)
    events = pl.from_arrow(audit_queries.silver_columns(done.con, EVENT_COLUMNS))
    expected = merchant_daily(for_gold(events, test_mode), None, updated_at=datetime.now(UTC))
    stored = pl.from_arrow(audit_queries.merchant_daily(done.con))
    mismatches = audit.daily_mismatches(_sums(stored), _sums(expected), pending)
    return audit.silver_vs_gold(days, mismatches, pending)


#: Days back the reconciliation section looks for bronze days no run covered: what Stripe's
#: Events API lists.
RECONCILE_LOOKBACK_DAYS = 30


def reconciliation_section(done: Audited) -> audit.Section:
    """The last reconciliation with the provider of each day: events still missing."""
    last = reconciliation.last_reconciliation_per_day(done.catalog)
    since = (datetime.now(UTC).date() - timedelta(days=RECONCILE_LOOKBACK_DAYS)).isoformat()
    days, unreconciled = audit_queries.reconciled_days(done.con, last.to_arrow(), since)
    return audit.provider_reconciliation(days, unreconciled, RECONCILE_LOOKBACK_DAYS)


#: The audit, section by section (a later check is appended here).
SECTIONS: list[Check] = [broker_section, bronze_section, gold_section, reconciliation_section]


def _sums(daily: pl.DataFrame) -> dict[tuple[str, str], dict[str, int]]:
    """``gold.merchant_daily`` rows summed per (day, currency): its counts and amounts (the
    columns of integer or decimal type), over merchants."""
    measures = [
        c
        for c, dtype in daily.schema.items()
        if c not in KEYS and (dtype.is_integer() or dtype.is_decimal())
    ]
    sums = daily.group_by("day", "currency").agg(pl.col(measures).sum())
    return {
        (str(row["day"]), row["currency"]): {c: row[c] for c in measures}
        for row in sums.iter_rows(named=True)
    }


def run_audit(settings: Settings | None = None) -> audit.AuditReport:
    """Every section of ``SECTIONS`` over the lakehouse as it is now."""
    settings = settings or get_settings()
    catalog = get_catalog(settings)
    tables = {
        spec.identifier_str: table
        for spec in T.ALL_TABLES
        if (table := existing_table(catalog, spec)) is not None
    }
    con = connect(catalog)
    try:
        done = Audited(settings, catalog, con, tables)
        return audit.AuditReport(tuple(section(done) for section in SECTIONS))
    finally:
        con.close()
