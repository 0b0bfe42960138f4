"""Recent appends kept in memory answer exactly what the files would, and step aside when they
cannot — on real Iceberg tables in the test's own warehouse."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.support.tables import make_silver_events
from warehouse.catalog import get_catalog
from warehouse.io import Table, append, conform, ensure_table, read_appended_since
from warehouse.maintenance import compact
from warehouse.recent import RecentAppends
from warehouse.tables import SILVER_PAYMENT_EVENTS

pytestmark = pytest.mark.integration


@pytest.fixture
def silver() -> Table:
    return ensure_table(get_catalog(), SILVER_PAYMENT_EVENTS)


def _append(recent: RecentAppends, table: Table, rows: pa.Table, n: int) -> int:
    """Append as the pipeline does: commit, then remember what was committed."""
    rows = conform(table, rows)
    snapshot_id = append(table, rows, summary={"test.batch": str(n)})
    recent.put(table, snapshot_id, rows)
    return snapshot_id


def _ids(rows: pa.Table) -> list[str]:
    return sorted(rows.column("event_id").to_pylist())


def test_appends_of_this_process_are_served_from_memory_and_match_the_files(silver) -> None:
    recent = RecentAppends()
    first = _append(recent, silver, make_silver_events(range(0, 10)), 1)
    second = _append(recent, silver, make_silver_events(range(10, 25)), 2)
    third = _append(recent, silver, make_silver_events(range(25, 30)), 3)

    rows, mark, held = recent.appended_since(silver, first)

    assert held == [second, third]  # from memory, oldest first
    assert mark == third
    files, files_mark = read_appended_since(silver, first)
    assert files_mark == mark
    assert _ids(rows) == _ids(files) == _ids(make_silver_events(range(10, 30)))
    by_id = [("event_id", "ascending")]
    assert rows.sort_by(by_id).to_pylist() == conform(silver, files).sort_by(by_id).to_pylist()


def test_the_first_read_without_a_watermark_is_served_from_memory_when_all_is_held(
    silver,
) -> None:
    recent = RecentAppends()
    a = _append(recent, silver, make_silver_events(range(0, 4)), 1)
    b = _append(recent, silver, make_silver_events(range(4, 6)), 2)

    rows, mark, held = recent.appended_since(silver, None, columns=("event_id",))

    assert held == [a, b] and mark == b
    assert rows.column_names == ["event_id"]
    assert _ids(rows) == _ids(read_appended_since(silver, None)[0])


def test_a_snapshot_another_writer_appended_is_read_from_the_files(silver) -> None:
    recent = RecentAppends()
    first = _append(recent, silver, make_silver_events(range(0, 5)), 1)
    append(silver, make_silver_events(range(5, 8)), summary={"test.batch": "elsewhere"})
    last = _append(recent, silver, make_silver_events(range(8, 10)), 3)

    rows, mark, held = recent.appended_since(silver, first)

    assert held == []  # not all in memory: the files answered
    assert mark == last
    assert _ids(rows) == _ids(make_silver_events(range(5, 10)))


def test_an_append_not_yet_handed_over_is_left_for_the_next_read(silver) -> None:
    recent = RecentAppends()
    first = _append(recent, silver, make_silver_events(range(0, 5)), 1)
    second = _append(recent, silver, make_silver_events(range(5, 8)), 2)
    # the other thread's commit has landed, its rows are not in memory yet
    third = append(silver, conform(silver, make_silver_events(range(8, 10))), summary={})

    rows, mark, held = recent.appended_since(silver, first)
    assert (held, mark) == ([second], second)  # up to the snapshot memory can vouch for
    assert _ids(rows) == _ids(make_silver_events(range(5, 8)))

    rows, mark, held = recent.appended_since(silver, mark)  # the next read takes the rest
    assert (held, mark) == ([], third)
    assert _ids(rows) == _ids(make_silver_events(range(8, 10)))


def test_evicted_batches_fall_back_to_the_files_and_memory_stays_bounded(silver) -> None:
    recent = RecentAppends(max_rows_per_table=12)
    first = _append(recent, silver, make_silver_events(range(0, 10)), 1)
    _append(recent, silver, make_silver_events(range(10, 20)), 2)
    _append(recent, silver, make_silver_events(range(20, 30)), 3)

    assert recent.held(silver) == 10  # only the newest batch is kept
    rows, _, held = recent.appended_since(silver, first)

    assert held == []
    assert _ids(rows) == _ids(make_silver_events(range(10, 30)))


def test_a_rewrite_between_appends_adds_no_rows_but_a_read_of_everything_goes_to_files(
    silver,
) -> None:
    recent = RecentAppends()
    _append(recent, silver, make_silver_events(range(0, 3)), 0)
    first = _append(recent, silver, make_silver_events(range(3, 6)), 1)
    assert compact(silver, min_files=2).partitions == 1  # OVERWRITE: same rows, new files
    silver.refresh()
    after = _append(recent, silver, make_silver_events(range(6, 9)), 2)

    rows, _, held = recent.appended_since(silver, first)
    assert held == [after]
    assert _ids(rows) == _ids(make_silver_events(range(6, 9)))

    everything, _, held = recent.appended_since(silver, None)
    assert held == []  # the compacted files hold rows memory cannot vouch for
    assert _ids(everything) == _ids(make_silver_events(range(0, 9)))


def test_released_batches_are_forgotten(silver) -> None:
    recent = RecentAppends()
    first = _append(recent, silver, make_silver_events(range(0, 3)), 1)
    second = _append(recent, silver, make_silver_events(range(3, 7)), 2)

    recent.release(silver, [first])

    assert recent.held(silver) == 4
    _, _, held = recent.appended_since(silver, first)
    assert held == [second]
