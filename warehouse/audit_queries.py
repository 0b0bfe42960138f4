"""The audit's reads (``lakehouse audit``): DuckDB over the lakehouse views (``warehouse.duck``),
vectorized end to end; the comparisons are in ``warehouse.audit``.

Cost: one aggregate over bronze's partition and offset columns; the exact gap and doubled ranges
only for partitions whose counts say they have some; one pass over bronze up to silver's watermark
joined by delivery and event id with silver and the quarantine; one over silver for gold. A layer
is read as its reader's watermark saw it (``pinned_view``) where pending work must be told apart
from missing work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from warehouse.audit import DayAccount, OffsetRange, PartitionStats, ScoreDay
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
        f"""SELECT {_KEY} AS p, count(*), count(DISTINCT "offset"), min("offset"), max("offset")
        FROM bronze.webhook_events GROUP BY ALL"""
    ).fetchall()
    stats = {p: PartitionStats(n, distinct, lo, hi) for p, n, distinct, lo, hi in rows}
    holed = [p for p, s in stats.items() if s.distinct < s.highest - s.lowest + 1]
    twice = [p for p, s in stats.items() if s.rows > s.distinct]
    return BronzeOffsets(stats, _gaps(con, holed), _doubled(con, twice))


def _gaps(con: duckdb.DuckDBPyConnection, partitions: Sequence[str]) -> dict[str, list]:
    if not partitions:
        return {}
    found = con.execute(
        f"""SELECT p, "offset" + 1, next - 1 FROM (
            SELECT p, "offset", lead("offset") OVER (PARTITION BY p ORDER BY "offset") AS next
            FROM (SELECT DISTINCT {_KEY} AS p, "offset" FROM bronze.webhook_events
                  WHERE list_contains($partitions, {_KEY})))
        WHERE next > "offset" + 1
        QUALIFY row_number() OVER (PARTITION BY p ORDER BY "offset") <= {MAX_RANGES}
        ORDER BY p, "offset\"""",
        {"partitions": list(partitions)},
    ).fetchall()
    return _by_partition(found)


def _doubled(con: duckdb.DuckDBPyConnection, partitions: Sequence[str]) -> dict[str, list]:
    if not partitions:
        return {}
    found = con.execute(
        f"""WITH twice AS (
            SELECT {_KEY} AS p, "offset" FROM bronze.webhook_events
            WHERE list_contains($partitions, {_KEY}) GROUP BY ALL HAVING count(*) > 1)
        SELECT p, min("offset"), max("offset") FROM (
            SELECT p, "offset", "offset" - row_number() OVER (PARTITION BY p ORDER BY "offset")
                AS island FROM twice)
        GROUP BY p, island
        QUALIFY row_number() OVER (PARTITION BY p ORDER BY min("offset")) <= {MAX_RANGES}
        ORDER BY 1, 2""",
        {"partitions": list(partitions)},
    ).fetchall()
    return _by_partition(found)


def _by_partition(found: list[tuple[str, int, int]]) -> dict[str, list[OffsetRange]]:
    ranges: dict[str, list[OffsetRange]] = {}
    for p, first, last in found:
        ranges.setdefault(p, []).append(OffsetRange(first, last))
    return ranges


_OUTCOMES = ("silver", "quarantine", "duplicate", "not_modelled")


def bronze_days(
    con: duckdb.DuckDBPyConnection,
    bronze: Table,
    silver_watermark: int | None,
    modelled_types: Sequence[str],
) -> list[DayAccount]:
    """Bronze deliveries per day received, by outcome: in silver (by delivery), quarantined by
    silver, not modelled (type not in ``modelled_types``), a duplicate (its event is in silver or
    the quarantine through another delivery). Only bronze as of silver's watermark is expected
    to have one; the rest of the day's deliveries are pending."""
    pinned_view(con, "audit.bronze_promoted", bronze, silver_watermark)
    found = con.execute(
        f"""WITH events AS (
            SELECT provider_event_id AS id FROM silver.payment_events
            UNION SELECT event_id FROM silver.quarantine
            WHERE layer = 'silver' AND event_id IS NOT NULL),
        outcome AS (
            SELECT {_DAY.format(column="b.received_at")} AS day, b.delivery_id,
                CASE WHEN s.delivery_id IS NOT NULL THEN 'silver'
                     WHEN q.delivery_id IS NOT NULL THEN 'quarantine'
                     WHEN NOT coalesce(list_contains($modelled, b.event_type), false)
                         THEN 'not_modelled'
                     WHEN e.id IS NOT NULL THEN 'duplicate'
                     ELSE 'missing' END AS outcome
            FROM audit.bronze_promoted b
            LEFT JOIN (SELECT DISTINCT delivery_id FROM silver.payment_events) s
                USING (delivery_id)
            LEFT JOIN (SELECT DISTINCT delivery_id FROM silver.quarantine
                       WHERE layer = 'silver') q USING (delivery_id)
            LEFT JOIN events e ON e.id = b.event_id),
        promoted AS (
            SELECT day, count(*) AS n,
                {", ".join(f"count(*) FILTER (outcome = '{o}') AS {o}" for o in _OUTCOMES)},
                (list(delivery_id ORDER BY delivery_id) FILTER (outcome = 'missing'))
                    [1:{EXAMPLES}] AS examples
            FROM outcome GROUP BY day),
        everything AS (
            SELECT {_DAY.format(column="received_at")} AS day, count(*) AS n
            FROM bronze.webhook_events GROUP BY day)
        SELECT day, a.n, {", ".join(f"coalesce(p.{o}, 0)" for o in _OUTCOMES)},
            a.n - coalesce(p.n, 0), p.examples
        FROM everything a LEFT JOIN promoted p USING (day) ORDER BY day""",
        {"modelled": list(modelled_types)},
    ).fetchall()
    return [
        DayAccount(day, n, silver, quarantine, dup, other, pending, tuple(examples or ()))
        for day, n, silver, quarantine, dup, other, pending, examples in found
    ]


_DAY = "CAST(CAST({column} AS DATE) AS VARCHAR)"


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
) -> list[ScoreDay]:
    """Per day created: eligible silver events (``eligible_types``) as of the scores' watermark,
    how many have one score, none, several; the day's other eligible events are pending."""
    pinned_view(con, "audit.silver_scored", silver, scores_watermark)
    created = _DAY.format(column="provider_created_at")
    found = con.execute(
        f"""WITH scored AS (SELECT event_id, count(*) AS n FROM gold.payment_scores GROUP BY 1),
        expected AS (
            SELECT {created} AS day, coalesce(c.n, 0) AS n
            FROM audit.silver_scored s LEFT JOIN scored c USING (event_id)
            WHERE list_contains($eligible, s.event_type)),
        checked AS (
            SELECT day, count(*) AS eligible, count(*) FILTER (n = 1) AS once,
                count(*) FILTER (n = 0) AS never, count(*) FILTER (n > 1) AS twice
            FROM expected GROUP BY day),
        everything AS (
            SELECT {created} AS day, count(*) AS n FROM silver.payment_events
            WHERE list_contains($eligible, event_type) GROUP BY day)
        SELECT day, coalesce(c.eligible, 0), coalesce(c.once, 0), coalesce(c.never, 0),
            coalesce(c.twice, 0), a.n - coalesce(c.eligible, 0)
        FROM everything a LEFT JOIN checked c USING (day) ORDER BY day""",
        {"eligible": list(eligible_types)},
    ).fetchall()
    return [ScoreDay(*row) for row in found]


def daily_pending_days(
    con: duckdb.DuckDBPyConnection, silver: Table, daily_watermark: int | None
) -> list[str]:
    """Days (created) with silver rows after ``gold.merchant_daily``'s watermark: not rebuilt
    yet (their row counts differ between silver now and silver as of the watermark)."""
    pinned_view(con, "audit.silver_daily", silver, daily_watermark)
    created = _DAY.format(column="provider_created_at")
    found = con.execute(
        f"""SELECT day FROM (
            SELECT {created} AS day, count(*) AS n FROM silver.payment_events GROUP BY 1) a
        LEFT JOIN (
            SELECT {created} AS day, count(*) AS n FROM audit.silver_daily GROUP BY 1) w
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
