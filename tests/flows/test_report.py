"""Run totals: batches add up per stage, and two runs' totals merge into one."""

from __future__ import annotations

from flows.report import RunTotals, StageReport


def _batch(rows: int, quarantined: int, lag: int) -> list[StageReport]:
    return [
        StageReport("bronze", rows_in=rows, rows_out=rows, lag={"t": lag}, seconds=1.0),
        StageReport(
            "silver",
            rows_in=rows,
            rows_out=rows - quarantined,
            quarantined={"INVALID_JSON": quarantined},
            duplicates=1,
            seconds=2.0,
        ),
    ]


def test_batches_add_up_per_stage() -> None:
    totals = RunTotals()
    totals.add(_batch(10, 2, lag=5))
    totals.add(_batch(4, 0, lag=0))

    assert totals.batches == 2
    assert totals.rows_in == {"bronze": 14, "silver": 14}
    assert totals.rows_out == {"bronze": 14, "silver": 12}
    assert totals.quarantined == {"INVALID_JSON": 2} and totals.duplicates == 2
    assert totals.lag == {"t": 0}  # the latest batch's


def test_two_runs_merge_into_the_totals_of_both() -> None:
    first, second, both = RunTotals(), RunTotals(), RunTotals()
    first.add(_batch(10, 2, lag=5))
    second.add(_batch(4, 1, lag=3))
    both.add(_batch(10, 2, lag=5))
    both.add(_batch(4, 1, lag=3))

    first.merge(second)

    assert first.as_dict() == both.as_dict()
