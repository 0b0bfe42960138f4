"""The audit's comparisons (pure): exact missing and doubled offset ranges, pending work kept
apart from missing work, the per-day accounting identity, silver against gold."""

from __future__ import annotations

from warehouse.audit import (
    AuditReport,
    DayAccount,
    OffsetRange,
    PartitionStats,
    ReconciledDay,
    ScoreDay,
    broker_vs_bronze,
    bronze_accounting,
    daily_mismatches,
    missing_offsets,
    provider_reconciliation,
    silver_vs_gold,
)

P = "webhooks.stripe.charge:1"


def test_missing_offsets_name_the_head_the_gaps_and_the_tail_exactly() -> None:
    stats = PartitionStats(rows=6, distinct=6, lowest=12, highest=29)
    gaps = [OffsetRange(14, 20), OffsetRange(23, 27)]

    assert missing_offsets(10, 35, stats, gaps) == [
        OffsetRange(10, 11),
        OffsetRange(14, 20),
        OffsetRange(23, 27),
        OffsetRange(30, 34),
    ]


def test_a_partition_bronze_recorded_but_holds_nothing_of_is_missing_whole() -> None:
    assert missing_offsets(100, 150, None, []) == [OffsetRange(100, 149)]


def test_offsets_past_the_recorded_ones_are_pending_not_missing() -> None:
    stats = {P: PartitionStats(rows=100, distinct=100, lowest=0, highest=99)}

    section = broker_vs_bronze({P: 180}, {P: 0}, {P: 100}, stats, {}, {})

    assert section.ok
    assert section.pending == 80
    assert section.rows == ((P, 0, 100, 180, 100, 0, 0, 80),)


def test_lost_and_doubled_offsets_are_problems_with_their_ranges() -> None:
    stats = {P: PartitionStats(rows=1010, distinct=750, lowest=0, highest=999)}

    section = broker_vs_bronze(
        {P: 1000},
        {P: 0},
        {P: 1000},
        stats,
        {P: [OffsetRange(250, 499)]},
        {P: [OffsetRange(7, 9), OffsetRange(800, 806)]},
    )

    assert not section.ok
    assert f"{P}: 250 offsets missing from bronze: 250..499" in section.problems
    assert f"{P}: 10 offsets in bronze more than once: 7..9, 800..806" in section.problems


def test_a_partition_bronze_never_read_is_all_pending() -> None:
    section = broker_vs_bronze({P: 40}, {}, {}, {}, {}, {})

    assert section.ok and section.pending == 40


def test_rows_past_the_recorded_offset_and_a_broker_behind_bronze_are_problems() -> None:
    stats = {P: PartitionStats(rows=12, distinct=12, lowest=0, highest=11)}

    section = broker_vs_bronze({P: 8}, {P: 0}, {P: 10}, stats, {}, {})

    assert any("rows up to offset 11 but bronze recorded 10" in p for p in section.problems)
    assert any("recorded 10 but the broker ends at 8" in p for p in section.problems)


def test_every_delivery_up_to_silvers_watermark_has_one_outcome_the_rest_is_pending() -> None:
    complete = DayAccount("2026-11-30", 100, 80, 5, 10, 3, pending=2)
    lossy = DayAccount("2026-12-01", 50, 40, 0, 0, 0, pending=0, examples=("t:0:7",))

    section = bronze_accounting([complete, lossy], silver_doubled=[])

    assert complete.missing == 0 and lossy.missing == 10
    assert section.pending == 2
    assert section.problems == (
        "2026-12-01: 10 bronze deliveries are in neither silver nor the quarantine, nor "
        "duplicates or not modelled (e.g. t:0:7)",
    )


def test_an_event_twice_in_silver_is_a_problem() -> None:
    section = bronze_accounting([], silver_doubled=["stripe:evt_1"])

    assert section.problems == ("silver holds 1 events more than once: stripe:evt_1",)


def test_unscored_and_doubly_scored_events_are_problems_pending_ones_are_not() -> None:
    days = [ScoreDay("2026-11-30", 10, 8, 1, 1, pending=4)]

    section = silver_vs_gold(days, [], ["2026-12-01"])

    assert section.pending == 4
    assert section.problems == (
        "2026-11-30: 1 eligible silver events have no score",
        "2026-11-30: 1 events are scored more than once",
    )
    assert section.notes == ("merchant_daily pending for 2026-12-01",)


def test_merchant_daily_sums_are_compared_per_day_and_currency_pending_days_aside() -> None:
    stored = {
        ("2026-11-30", "USD"): {"volume_minor": 500, "payments_succeeded": 2},
        ("2026-12-01", "USD"): {"volume_minor": 1, "payments_succeeded": 1},
    }
    expected = {
        ("2026-11-30", "USD"): {"volume_minor": 700, "payments_succeeded": 2},
        ("2026-11-30", "EUR"): {"volume_minor": 10, "payments_succeeded": 1},
        ("2026-12-01", "USD"): {"volume_minor": 9, "payments_succeeded": 3},
    }

    assert daily_mismatches(stored, expected, skip_days=["2026-12-01"]) == [
        "2026-11-30 EUR: payments_succeeded 0 (silver gives 1), volume_minor 0 (silver gives 10)",
        "2026-11-30 USD: volume_minor 500 (silver gives 700)",
    ]


def test_events_neither_in_bronze_nor_sent_are_missing_sent_ones_not_loaded_are_pending() -> None:
    at = "2026-12-01 02:00:00"
    days = [
        ReconciledDay("stripe", "2026-11-29", "all", 50, 50, 0, 0, 0, False, at),
        ReconciledDay("stripe", "2026-11-30", "all", 40, 35, 5, 2, 0, False, at),
        ReconciledDay("stripe", "2026-11-28", "all", 30, 27, 0, 0, 3, True, at),
    ]

    section = provider_reconciliation(days, ["2026-11-27"], 30)

    assert section.pending == 2
    assert [row[1] for row in section.rows] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert section.problems == (
        "stripe 2026-11-28: 3 events the provider listed are in neither bronze nor sent "
        f"(a dry run, last run {at}): run `lakehouse run reconcile` for that day",
    )
    assert section.notes == ("bronze days of the last 30 not reconciled: 2026-11-27",)


def test_reconciliation_never_run_is_a_note_not_a_problem() -> None:
    section = provider_reconciliation([], ["2026-11-30"], 30)

    assert section.ok and not section.rows
    assert "reconciliation with the provider never ran" in section.notes[0]


def test_the_report_fails_when_any_section_has_a_problem_and_renders_it() -> None:
    ok = broker_vs_bronze({P: 5}, {P: 0}, {P: 5}, {P: PartitionStats(5, 5, 0, 4)}, {}, {})
    bad = bronze_accounting([], silver_doubled=["stripe:evt_1"])

    report = AuditReport((ok, bad))

    assert not report.ok and AuditReport((ok,)).ok
    assert "**silver holds 1 events more than once: stripe:evt_1**" in report.markdown()
