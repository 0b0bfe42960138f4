"""Commits that depend on the table as they find it, on real Iceberg tables with two handles on
one table (two loaders): the one that lost the race plans again on the winner's snapshot instead
of landing beside it (pyiceberg's requirement on the base snapshot, its own re-apply off)."""

from __future__ import annotations

import polars as pl
import pytest
from pyiceberg.catalog import Catalog

from simulator.events import make_stripe_event
from tests.support.bronze import bronze_frame
from tests.support.tables import make_quarantine_rows, make_silver_events
from warehouse import io, queries, watermarks
from warehouse.bronze import OffsetGap, append_deliveries
from warehouse.catalog import get_catalog
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, SILVER_PAYMENT_EVENTS, SILVER_QUARANTINE

pytestmark = pytest.mark.integration
KEY = "webhooks.stripe.payment_intent:0"


@pytest.fixture
def catalog() -> Catalog:
    return get_catalog()


def deliveries(first: int, last: int):
    """Bronze rows of offsets ``first`` to ``last`` - 1 of one partition."""
    events = [make_stripe_event("payment_intent.succeeded") for _ in range(last - first)]
    return bronze_frame(events, first_offset=first).to_arrow()


def offsets(table) -> list[int]:
    table.refresh()
    return sorted(io.scan(table, columns=["offset"]).column("offset").to_pylist())


def test_every_table_has_pyicebergs_own_commit_retry_off(catalog: Catalog) -> None:
    for table in io.ensure_tables(catalog).values():
        assert table.properties["commit.retry.num-retries"] == "0"


def test_a_loader_that_lost_the_race_fences_what_the_winner_recorded(catalog: Catalog) -> None:
    io.ensure_table(catalog, BRONZE_WEBHOOK_EVENTS)
    first = catalog.load_table(BRONZE_WEBHOOK_EVENTS.identifier_str)
    second = catalog.load_table(BRONZE_WEBHOOK_EVENTS.identifier_str)  # stale from now on

    append_deliveries(first, deliveries(0, 10), {KEY: 0}, {KEY: 10})
    late = append_deliveries(second, deliveries(5, 15), {KEY: 5}, {KEY: 15})

    assert offsets(first) == list(range(15))  # 5..9 once: fenced against the winner's commit
    assert late.left_out == 5
    assert watermarks.recorded_offsets(first) == {KEY: 15}
    assert watermarks.first_offsets(first) == {KEY: 0}  # a table property, set once


def test_a_batch_that_would_skip_offsets_commits_nothing(catalog: Catalog) -> None:
    bronze = io.ensure_table(catalog, BRONZE_WEBHOOK_EVENTS)
    append_deliveries(bronze, deliveries(0, 10), {KEY: 0}, {KEY: 10})
    snapshots = len(bronze.snapshots())

    with pytest.raises(OffsetGap, match=r"skip offsets 10\.\.11"):
        append_deliveries(bronze, deliveries(12, 20), {KEY: 12}, {KEY: 20})

    bronze.refresh()
    assert len(bronze.snapshots()) == snapshots
    assert watermarks.recorded_offsets(bronze) == {KEY: 10}


def test_a_stage_whose_watermark_moved_meanwhile_commits_nothing(catalog: Catalog) -> None:
    io.ensure_table(catalog, SILVER_PAYMENT_EVENTS)
    winner = catalog.load_table(SILVER_PAYMENT_EVENTS.identifier_str)
    loser = catalog.load_table(SILVER_PAYMENT_EVENTS.identifier_str)
    events = make_silver_events(range(3))
    # both promoted bronze up to snapshot 7 from no watermark; the first commits
    io.append(winner, events, watermarks.source_summary(7), watermarks.unmoved(None))

    with pytest.raises(watermarks.Superseded):
        io.append(loser, events, watermarks.source_summary(7), watermarks.unmoved(None))

    assert io.scan(winner).num_rows == 3
    assert watermarks.watermark(loser) == 7  # refreshed by the lost race: the next pass is right


def test_quarantine_rows_two_loaders_record_land_once(catalog: Catalog) -> None:
    io.ensure_table(catalog, SILVER_QUARANTINE)
    first = catalog.load_table(SILVER_QUARANTINE.identifier_str)
    second = catalog.load_table(SILVER_QUARANTINE.identifier_str)
    rows = make_quarantine_rows(range(4))

    assert queries.record_quarantine(first, pl.from_arrow(rows), {}) == 4
    assert queries.record_quarantine(second, pl.from_arrow(rows), {}) == 0

    first.refresh()
    assert io.scan(first).num_rows == 4


def _ensure_all_at_once(home: str, start: object, errors: object) -> None:
    """One loader starting: every table ensured on a fresh catalog, after the others are ready."""
    import os

    os.environ["LAKEHOUSE_HOME"] = home
    try:
        start.wait()  # type: ignore[attr-defined]
        io.ensure_tables(get_catalog())
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def test_loaders_starting_at_once_on_a_fresh_catalog_all_get_the_tables(tmp_path) -> None:
    # real processes on one SQLite catalog, released together: namespaces and tables are created
    # by whichever process wins each race; the others must find them, not fail
    import multiprocessing

    # spawned, not forked: a fork of the test session (threads of other fixtures) can hang
    context = multiprocessing.get_context("spawn")
    for attempt in range(6):
        home = str(tmp_path / f"home{attempt}")
        start, errors = context.Barrier(4), context.Queue()
        workers = [
            context.Process(target=_ensure_all_at_once, args=(home, start, errors))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        found = [errors.get() for _ in range(errors.qsize())]
        assert not found, f"attempt {attempt}: {found}"
        assert [worker.exitcode for worker in workers] == [0] * 4, f"attempt {attempt}"
