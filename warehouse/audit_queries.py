"""The audit's reads (``lakehouse audit``): DuckDB over the lakehouse views (``warehouse.duck``),
vectorized end to end; the comparisons are in ``warehouse.audit``.

Cost: one aggregate over bronze's partition and offset columns (grouped by their values; keys are
spelled only for the result); the exact gap and doubled ranges only for partitions whose counts
say they have some; one anti join of bronze up to silver's watermark with silver's deliveries
(then with the quarantine's, and by event id only for the few left); one anti join of silver with
the scores; days cast to text only after aggregating. A layer is read as its reader's watermark
saw it (``pinned_view``) where pending work must be told apart from missing work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from warehouse.audit import DayAccount, OffsetRange, PartitionStats, ReconciledDay, ScoreDay
from warehouse.duck import pinned_view

#: Ranges read per partition and kind (missing, doubled): the audit lists the first of them.
MAX_RANGES = 1000
#: Delivery ids shown per day for deliveries accounted for nowhere.
EXAMPLES = 5
_KEY = "topic || ':' || CAST(\"partition\" AS VARCHAR)"


@dataclass(frozen=True)
class BronzeOffsets:
    """Bronze's offsets per ``topic:partition``: counts, and the exact problem ranges."""

    stats: dict[str, PartitionStats]
    gaps: dict[str, list[OffsetRange]]
    doubled: dict[str, list[OffsetRange]]


def bronze_offsets(con: duckdb.DuckDBPyConnection) -> BronzeOffsets:
    """Per partition in bronze: rows, distinct offsets, lowest, highest; then the ranges absent
    between its rows, and the ranges present more than once, where the counts say so."""
    rows = con.execute(
        f"""SELECT {_KEY} AS p, n, distinct_offsets, lowest, highest FROM (
            SELECT topic, "partition", count(*) AS n, count(DISTINCT "offset") AS distinct_offsets,
                min("offset") AS lowest, max("offset") AS highest
            FROM bronze.webhook_events GROUP BY topic, "partition")"""
    ).fetchall()
    stats = {p: PartitionStats(n, distinct, lo, hi) for p, n, distinct, lo, hi in rows}
    holed = [p for p, s in stats.items() if s.distinct < s.highest - s.lowest + 1]
    twice = [p for p, s in stats.items() if s.rows > s.distinct]
    return BronzeOffsets(stats, _gaps(con, holed), _doubled(con, twice))


def _of(partitions: Sequence[str]) -> str:
    """A filter on the rows of ``partitions`` (``topic:partition`` keys), by column values."""
    pairs = [key.rsplit(":", 1) for key in partitions]
    return " OR ".join(f'(topic = {_text(t)} AND "partition" = {int(n)})' for t, n in pairs)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _gaps(con: duckdb.DuckDBPyConnection, partitions: Sequence[str]) -> dict[str, list]:
    if not partitions:
        return {}
    found = con.execute(
        f"""SELECT {_KEY}, "offset" + 1, next - 1 FROM (
            SELECT topic, "partition", "offset",
                lead("offset") OVER (PARTITION BY topic, "partition" ORDER BY "offset") AS next
            FROM (SELECT DISTINCT topic, "partition", "offset" FROM bronze.webhook_events
                  WHERE {_of(partitions)}))
        WHERE next > "offset" + 1
        QUALIFY row_number() OVER (PARTITION BY topic, "partition" ORDER BY "offset")
            <= {MAX_RANGES}
        ORDER BY 1, 2"""
    ).fetchall()
    return _by_partition(found)


def _doubled(con: duckdb.DuckDBPyConnection, partitions: Sequence[str]) -> dict[str, list]:
    if not partitions:
        return {}
    found = con.execute(
        f"""WITH twice AS (
            SELECT topic, "partition", "offset" FROM bronze.webhook_events
            WHERE {_of(partitions)} GROUP BY ALL HAVING count(*) > 1)
        SELECT {_KEY}, min("offset"), max("offset") FROM (
            SELECT topic, "partition", "offset",
                "offset" - row_number() OVER (PARTITION BY topic, "partition" ORDER BY "offset")
                    AS island
            FROM twice)
        GROUP BY topic, "partition", island
        QUALIFY row_number() OVER (PARTITION BY topic, "partition" ORDER BY min("offset"))
            <= {MAX_RANGES}
        ORDER BY 1, 2"""
    ).fetchall()
    return _by_partition(found)


def _by_partition(found: list[tuple[str, int, int]]) -> dict[str, list[OffsetRange]]:
    ranges: dict[str, list[OffsetRange]] = {}
    for p, first, last in found:
        ranges.setdefault(p, []).append(OffsetRange(first, last))
    return ranges


def bronze_days(
    con: duckdb.DuckDBPyConnection,
    bronze: Table,
    silver_watermark: int | None,
    modelled_types: Sequence[str],
) -> list[DayAccount]:
    """Bronze deliveries per day received, by outcome: in silver (by delivery), quarantined by
    silver, not modelled (type not in ``modelled_types``), a duplicate (its event is in silver or
    the quarantine through another delivery). Only bronze as of silver's watermark is expected
    to have one; the rest of the day's deliveries are pending.

    One anti join of the deliveries with silver's, one with the quarantine's; only the few left
    are classified further (by type, by event id)."""
    pinned_view(con, "audit.bronze_promoted", bronze, silver_watermark)
    found = con.execute(
        f"""WITH promoted AS (
            SELECT CAST(received_at AS DATE) AS day, delivery_id, event_id, event_type
            FROM audit.bronze_promoted),
        not_silver AS (
            SELECT * FROM promoted p
            WHERE NOT EXISTS (SELECT 1 FROM silver.payment_events s
                              WHERE s.delivery_id = p.delivery_id)),
        neither AS (
            SELECT * FROM not_silver n
            WHERE NOT EXISTS (SELECT 1 FROM silver.quarantine q
                              WHERE q.layer = 'silver' AND q.delivery_id = n.delivery_id)),
        events AS (
            SELECT provider_event_id AS id FROM silver.payment_events
            UNION ALL SELECT event_id FROM silver.quarantine WHERE layer = 'silver'),
        seen AS (SELECT DISTINCT x.delivery_id FROM neither x JOIN events e ON e.id = x.event_id),
        outcome AS (
            SELECT x.day, x.delivery_id,
                CASE WHEN NOT coalesce(list_contains($modelled, x.event_type), false)
                         THEN 'not_modelled'
                     WHEN s.delivery_id IS NOT NULL THEN 'duplicate'
                     ELSE 'missing' END AS outcome
            FROM neither x LEFT JOIN seen s USING (delivery_id)),
        totals AS (
            SELECT CAST(received_at AS DATE) AS day, count(*) AS n
            FROM bronze.webhook_events GROUP BY 1),
        promoted_n AS (SELECT day, count(*) AS n FROM promoted GROUP BY 1),
        not_silver_n AS (SELECT day, count(*) AS n FROM not_silver GROUP BY 1),
        neither_n AS (
            SELECT day, count(*) AS n,
                count(*) FILTER (outcome = 'duplicate') AS duplicates,
                count(*) FILTER (outcome = 'not_modelled') AS not_modelled,
                (list(delivery_id ORDER BY delivery_id) FILTER (outcome = 'missing'))
                    [1:{EXAMPLES}] AS examples
            FROM outcome GROUP BY 1)
        SELECT CAST(t.day AS VARCHAR), t.n,
            coalesce(p.n, 0) - coalesce(s.n, 0),
            coalesce(s.n, 0) - coalesce(x.n, 0),
            coalesce(x.duplicates, 0), coalesce(x.not_modelled, 0),
            t.n - coalesce(p.n, 0), x.examples
        FROM totals t LEFT JOIN promoted_n p USING (day) LEFT JOIN not_silver_n s USING (day)
            LEFT JOIN neither_n x USING (day)
        ORDER BY t.day""",
        {"modelled": list(modelled_types)},
    ).fetchall()
    return [
        DayAccount(day, n, silver, quarantine, dup, other, pending, tuple(examples or ()))
        for day, n, silver, quarantine, dup, other, pending, examples in found
    ]


def silver_doubled(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Event ids silver holds more than once."""
    found = con.execute(
        "SELECT event_id FROM silver.payment_events GROUP BY 1 HAVING count(*) > 1 ORDER BY 1"
    ).fetchall()
    return [event_id for (event_id,) in found]


def score_days(
    con: duckdb.DuckDBPyConnection,
    silver: Table,
    scores_watermark: int | None,
    eligible_types: Sequence[str],
    include_test_mode: bool = False,
) -> list[ScoreDay]:
    """Per day created: eligible silver events (``eligible_types``; live ones only unless
    ``include_test_mode``, as gold scores them) as of the scores' watermark, how many have a
    score, how many none; events scored more than once; the day's other eligible events are
    pending. One anti join of the events with the scores."""
    pinned_view(con, "audit.silver_scored", silver, scores_watermark)
    eligible = "list_contains($eligible, event_type) AND (coalesce(livemode, true) OR $test_mode)"
    found = con.execute(
        f"""WITH expected AS (
            SELECT CAST(provider_created_at AS DATE) AS day, event_id
            FROM audit.silver_scored WHERE {eligible}),
        unscored AS (
            SELECT day, count(*) AS n FROM expected x
            WHERE NOT EXISTS (SELECT 1 FROM gold.payment_scores g WHERE g.event_id = x.event_id)
            GROUP BY 1),
        expected_n AS (SELECT day, count(*) AS n FROM expected GROUP BY 1),
        everything AS (
            SELECT CAST(provider_created_at AS DATE) AS day, count(*) AS n
            FROM silver.payment_events WHERE {eligible} GROUP BY 1),
        doubled AS (
            SELECT CAST(provider_created_at AS DATE) AS day,
                count(*) - count(DISTINCT event_id) AS n
            FROM gold.payment_scores GROUP BY 1)
        SELECT CAST(a.day AS VARCHAR), coalesce(e.n, 0), coalesce(e.n, 0) - coalesce(u.n, 0),
            coalesce(u.n, 0), coalesce(d.n, 0), a.n - coalesce(e.n, 0)
        FROM everything a LEFT JOIN expected_n e USING (day) LEFT JOIN unscored u USING (day)
            LEFT JOIN doubled d USING (day)
        ORDER BY a.day""",
        {"eligible": list(eligible_types), "test_mode": include_test_mode},
    ).fetchall()
    return [ScoreDay(*row) for row in found]


def daily_pending_days(
    con: duckdb.DuckDBPyConnection, silver: Table, daily_watermark: int | None
) -> list[str]:
    """Days (created) with silver rows after ``gold.merchant_daily``'s watermark: not rebuilt
    yet (their row counts differ between silver now and silver as of the watermark)."""
    pinned_view(con, "audit.silver_daily", silver, daily_watermark)
    found = con.execute(
        """SELECT CAST(day AS VARCHAR) FROM (
            SELECT CAST(provider_created_at AS DATE) AS day, count(*) AS n
            FROM silver.payment_events GROUP BY 1) a
        LEFT JOIN (
            SELECT CAST(provider_created_at AS DATE) AS day, count(*) AS n
            FROM audit.silver_daily GROUP BY 1) w
        USING (day) WHERE a.n <> coalesce(w.n, 0) ORDER BY 1"""
    ).fetchall()
    return [day for (day,) in found]


def silver_columns(con: duckdb.DuckDBPyConnection, columns: Sequence[str]) -> pa.Table:
    """``columns`` of every silver event (the input ``gold.merchant_daily`` is rebuilt from)."""
    selected = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f"SELECT {selected} FROM silver.payment_events").to_arrow_table()


def merchant_daily(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """``gold.merchant_daily`` as stored."""
    return con.execute("SELECT * FROM gold.merchant_daily").to_arrow_table()


def reconciled_days(
    con: duckdb.DuckDBPyConnection, last: pa.Table, bronze_since: str
) -> tuple[list[ReconciledDay], list[str]]:
    """``last`` (the last reconciliation of each provider and day,
    ``warehouse.reconciliation.last_reconciliation_per_day``) with how many of the events each
    run sent bronze does not hold yet (one anti join on event id); and the days since
    ``bronze_since`` (ISO date, today aside) bronze received events on that no run covered."""
    con.register("audit_last_reconciliation", last)
    try:
        found = con.execute(
            """WITH sent AS (
                SELECT provider, day, unnest(recovered_event_ids) AS event_id
                FROM audit_last_reconciliation),
            absent AS (
                SELECT provider, day, count(*) AS n FROM sent s
                WHERE NOT EXISTS (SELECT 1 FROM bronze.webhook_events b
                                  WHERE b.event_id = s.event_id)
                GROUP BY ALL)
            SELECT r.provider, CAST(r.day AS VARCHAR), r.listing, r.provider_events,
                r.in_bronze, r.recovered_earlier + r.recovered, coalesce(a.n, 0),
                r.still_missing, r.dry_run, strftime(r.reconciled_at, '%Y-%m-%d %H:%M:%S')
            FROM audit_last_reconciliation r LEFT JOIN absent a USING (provider, day)
            ORDER BY 1, 2"""
        ).fetchall()
        uncovered = con.execute(
            """SELECT DISTINCT CAST(CAST(received_at AS DATE) AS VARCHAR) AS day
            FROM bronze.webhook_events
            WHERE received_at >= CAST($since AS DATE) AND received_at < current_date
              AND CAST(received_at AS DATE) NOT IN (SELECT day FROM audit_last_reconciliation)
            ORDER BY 1""",
            {"since": bronze_since},
        ).fetchall()
    finally:
        con.unregister("audit_last_reconciliation")
    return [ReconciledDay(*row) for row in found], [day for (day,) in uncovered]
