"""The completeness audit's comparisons (``lakehouse audit``), pure: the figures come from the
broker and from the tables (``warehouse.audit_queries``), the verdict from here. No I/O.

Each check is a ``Section``: a table for people (one row per partition or day) and the problems
found, offset ranges and days spelled out. Work not done yet is *pending*, never missing: offsets
past the ones bronze recorded (consumer lag), bronze rows after silver's watermark, silver rows
after gold's. An audit passes when no section has a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Ranges listed per problem before the rest is only counted.
SHOWN_RANGES = 20


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``first`` to ``last``, both included."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


@dataclass(frozen=True)
class Section:
    """One check: its table (``columns``, ``rows``), the problems found and the pending work."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    problems: tuple[str, ...] = ()
    pending: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "ok": self.ok,
            "problems": list(self.problems),
            "pending": self.pending,
            "notes": list(self.notes),
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
        }


@dataclass(frozen=True)
class AuditReport:
    """Every section's outcome; ``ok`` when none found a problem."""

    sections: tuple[Section, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sections)

    @property
    def problems(self) -> list[str]:
        return [p for s in self.sections for p in s.problems]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "sections": [s.as_dict() for s in self.sections]}

    def markdown(self) -> str:
        """The report as Markdown (the Prefect artifact)."""
        lines = [f"# Audit: {'complete' if self.ok else 'PROBLEMS FOUND'}", ""]
        for section in self.sections:
            lines += [f"## {section.title}: {'ok' if section.ok else 'problems'}", ""]
            lines += [f"- **{p}**" for p in section.problems]
            lines += [f"- {n}" for n in section.notes]
            if section.rows:
                lines += ["", "| " + " | ".join(section.columns) + " |"]
                lines += ["|" + "---|" * len(section.columns)]
                lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in section.rows]
            lines.append("")
        return "\n".join(lines)


def _ranges_text(ranges: Sequence[OffsetRange]) -> str:
    shown = ", ".join(str(r) for r in ranges[:SHOWN_RANGES])
    more = len(ranges) - SHOWN_RANGES
    return shown + (f" and {more} more ranges" if more > 0 else "")


@dataclass(frozen=True)
class PartitionStats:
    """Bronze's rows of one partition: how many, how many distinct offsets, lowest, highest."""

    rows: int
    distinct: int
    lowest: int
    highest: int


def missing_offsets(
    first: int, recorded: int, stats: PartitionStats | None, gaps: Sequence[OffsetRange]
) -> list[OffsetRange]:
    """Offsets from ``first`` up to ``recorded`` (excluded) absent from bronze: before its lowest
    row, the ``gaps`` between its rows, after its highest row."""
    if recorded <= first:
        return []
    if stats is None:
        return [OffsetRange(first, recorded - 1)]
    inside = [
        OffsetRange(max(g.first, first), min(g.last, recorded - 1))
        for g in gaps
        if g.last >= first and g.first < recorded
    ]
    head = [OffsetRange(first, min(stats.lowest, recorded) - 1)] if stats.lowest > first else []
    tail = [OffsetRange(max(stats.highest + 1, first), recorded - 1)]
    return head + inside + (tail if stats.highest + 1 < recorded else [])


def broker_vs_bronze(
    ends: Mapping[str, int],
    first: Mapping[str, int],
    recorded: Mapping[str, int],
    stats: Mapping[str, PartitionStats],
    gaps: Mapping[str, Sequence[OffsetRange]],
    doubled: Mapping[str, Sequence[OffsetRange]],
) -> Section:
    """Per topic-partition: every offset from where bronze began reading it (``first``) up to
    the offset it recorded is in bronze exactly once; beyond that, up to the broker's end, is
    pending. ``gaps`` and ``doubled``: ranges absent between bronze's rows, ranges present more
    than once."""
    rows, problems, pending = [], [], 0
    for key in sorted(set(ends) | set(recorded) | set(stats)):
        begin, upto, end = first.get(key, 0), recorded.get(key), ends.get(key)
        have = stats.get(key)
        missing = [] if upto is None else missing_offsets(begin, upto, have, gaps.get(key, ()))
        twice = list(doubled.get(key, ()))
        waiting = max(0, (end or 0) - (upto if upto is not None else begin))
        pending += waiting
        problems += _partition_problems(key, begin, upto, end, have, missing, twice)
        rows.append(
            (
                key,
                begin,
                upto if upto is not None else "-",
                end if end is not None else "-",
                have.rows if have else 0,
                sum(r.size for r in missing),
                sum(r.size for r in twice),
                waiting,
            )
        )
    columns = ("partition", "from", "recorded", "broker end", "in bronze", "missing", "doubled")
    return Section(
        "broker offsets vs bronze", (*columns, "pending"), tuple(rows), tuple(problems), pending
    )


def _partition_problems(
    key: str,
    begin: int,
    upto: int | None,
    end: int | None,
    have: PartitionStats | None,
    missing: Sequence[OffsetRange],
    twice: Sequence[OffsetRange],
) -> list[str]:
    found = []
    if missing:
        count = sum(r.size for r in missing)
        found.append(f"{key}: {count} offsets missing from bronze: {_ranges_text(missing)}")
    if twice:
        count = sum(r.size for r in twice)
        found.append(f"{key}: {count} offsets in bronze more than once: {_ranges_text(twice)}")
    if have is not None and (upto is None or have.highest >= upto):
        found.append(f"{key}: rows up to offset {have.highest} but bronze recorded {upto}")
    if upto is not None and end is not None and upto > end:
        found.append(f"{key}: bronze recorded {upto} but the broker ends at {end}")
    return found


@dataclass(frozen=True)
class DayAccount:
    """Bronze deliveries of one day (received), by where silver put them."""

    day: str
    bronze: int
    silver: int
    quarantine: int
    duplicates: int
    not_modelled: int
    pending: int
    examples: tuple[str, ...] = ()  # delivery ids accounted for nowhere

    @property
    def missing(self) -> int:
        """Deliveries up to silver's watermark in none of the four outcomes."""
        done = self.silver + self.quarantine + self.duplicates + self.not_modelled
        return self.bronze - self.pending - done


def bronze_accounting(days: Iterable[DayAccount], silver_doubled: Sequence[str]) -> Section:
    """Per day: bronze = silver + quarantine + duplicates + not modelled (+ pending: after
    silver's watermark); and silver holds each event once (``silver_doubled``: event ids in it
    more than once)."""
    rows, problems, pending = [], [], 0
    for d in sorted(days, key=lambda d: d.day):
        pending += d.pending
        rows.append(
            (d.day, d.bronze, d.silver, d.quarantine, d.duplicates, d.not_modelled, d.pending)
            + (d.missing,)
        )
        if d.missing:
            examples = f" (e.g. {', '.join(d.examples)})" if d.examples else ""
            problems.append(
                f"{d.day}: {d.missing} bronze deliveries are in neither silver nor the "
                f"quarantine, nor duplicates or not modelled{examples}"
            )
    if silver_doubled:
        problems.append(
            f"silver holds {len(silver_doubled)} events more than once: "
            + ", ".join(silver_doubled[:SHOWN_RANGES])
        )
    columns = ("day", "bronze", "silver", "quarantine", "duplicates", "not modelled", "pending")
    return Section(
        "bronze = silver + quarantine + duplicates + not modelled",
        (*columns, "missing"),
        tuple(rows),
        tuple(problems),
        pending,
    )


@dataclass(frozen=True)
class ScoreDay:
    """Eligible silver events of one day (created) against their gold scores."""

    day: str
    eligible: int
    scored: int
    unscored: int
    doubled: int
    pending: int


def silver_vs_gold(
    days: Iterable[ScoreDay], daily_mismatches: Iterable[str], pending_days: Sequence[str]
) -> Section:
    """Every eligible silver event up to the scores' watermark scored once; and
    ``gold.merchant_daily`` equal to what silver gives for every day gold has caught up with
    (``daily_mismatches``: the days and figures that differ)."""
    rows, problems, pending = [], [], 0
    for d in sorted(days, key=lambda d: d.day):
        pending += d.pending
        rows.append((d.day, d.eligible, d.scored, d.unscored, d.doubled, d.pending))
        if d.unscored:
            problems.append(f"{d.day}: {d.unscored} eligible silver events have no score")
        if d.doubled:
            problems.append(f"{d.day}: {d.doubled} events are scored more than once")
    problems += [f"gold.merchant_daily {m}" for m in daily_mismatches]
    notes = (f"merchant_daily pending for {', '.join(pending_days)}",) if pending_days else ()
    columns = ("day", "eligible", "scored", "unscored", "doubled", "pending")
    return Section("silver vs gold", columns, tuple(rows), tuple(problems), pending, notes)


def daily_mismatches(
    stored: Mapping[tuple[str, str], Mapping[str, int]],
    expected: Mapping[tuple[str, str], Mapping[str, int]],
    skip_days: Iterable[str] = (),
) -> list[str]:
    """``(day, currency)`` sums that differ between ``gold.merchant_daily`` (``stored``) and the
    same sums over silver (``expected``), days in ``skip_days`` (pending) aside."""
    skipped = set(skip_days)
    found = []
    for key in sorted(set(stored) | set(expected)):
        if key[0] in skipped:
            continue
        have, want = stored.get(key, {}), expected.get(key, {})
        diff = {c: (have.get(c, 0), want.get(c, 0)) for c in set(have) | set(want)}
        diff = {c: v for c, v in diff.items() if v[0] != v[1]}
        if diff:
            text = ", ".join(f"{c} {a} (silver gives {b})" for c, (a, b) in sorted(diff.items()))
            found.append(f"{key[0]} {key[1]}: {text}")
    return found


@dataclass(frozen=True)
class ReconciledDay:
    """The last reconciliation of one provider's day (events created that UTC day)."""

    provider: str
    day: str
    listing: str
    provider_events: int
    in_bronze: int
    sent: int  # recovered by that run or an earlier one
    sent_not_in_bronze: int  # sent to the topics, not loaded into bronze yet
    still_missing: int
    dry_run: bool
    reconciled_at: str


def provider_reconciliation(
    days: Iterable[ReconciledDay], unreconciled: Sequence[str], lookback_days: int
) -> Section:
    """The provider's own list against the lakehouse, as the last reconciliation of each day
    found it: events in neither bronze nor sent are a problem; events sent by reconciliation
    but not in bronze yet are pending (the broker section says whether the loaders are behind).
    Reconciliation never having run, or days bronze received events on that no run covered,
    are notes: it runs only where a provider API key is configured."""
    rows, problems, pending = [], [], 0
    for d in sorted(days, key=lambda d: (d.provider, d.day)):
        pending += d.sent_not_in_bronze
        rows.append(
            (d.provider, d.day, d.listing, d.provider_events, d.in_bronze, d.sent)
            + (d.sent_not_in_bronze, d.still_missing, d.reconciled_at)
        )
        if d.still_missing:
            how = "a dry run" if d.dry_run else "the broker refused them"
            problems.append(
                f"{d.provider} {d.day}: {d.still_missing} events the provider listed are in "
                f"neither bronze nor sent ({how}, last run {d.reconciled_at}): "
                "run `lakehouse run reconcile` for that day"
            )
    notes: tuple[str, ...] = ()
    if not rows:
        notes = (
            "reconciliation with the provider never ran "
            "(`lakehouse run reconcile`, needs LAKEHOUSE_STRIPE_API_KEY)",
        )
    elif unreconciled:
        notes = (
            f"bronze days of the last {lookback_days} not reconciled: "
            + ", ".join(unreconciled[:SHOWN_RANGES]),
        )
    columns = ("provider", "day", "listing", "provider events", "in bronze", "sent")
    return Section(
        "last reconciliation with the provider",
        (*columns, "sent, not in bronze yet", "still missing", "reconciled at"),
        tuple(rows),
        tuple(problems),
        pending,
        notes,
    )
