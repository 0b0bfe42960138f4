"""What a stage did, and the totals of a micro-batch run: what the artifact, the logs and the CLI
show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class StageReport:
    """What one stage did, for logs and the run artifact."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    not_modelled: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    oldest_unprocessed_age_s: float | None = None
    missing_models: list[str] = field(default_factory=list)
    seconds: float = 0.0
    gate_results: list[Any] = field(default_factory=list, repr=False)  # for Data Docs

    def add_gate(self, result: Any) -> None:
        """Record a gate's result (None: the batch was empty, nothing was gated)."""
        if result is not None:
            self.gate_results.append(result)

    @property
    def gates(self) -> list[dict[str, Any]]:
        """The gates' results as JSON-ready summaries."""
        return [result.to_dict() for result in self.gate_results]

    def as_dict(self) -> dict[str, Any]:
        fields_ = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "gate_results"}
        return {**fields_, "gates": self.gates}


@dataclass
class RunTotals:
    """Sums over the batches of one run, per stage."""

    batches: int = 0
    rows_in: Counter = field(default_factory=Counter)
    rows_out: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    duplicates: int = 0
    not_modelled: int = 0
    gate_results: dict[str, Any] = field(default_factory=dict)  # the latest per suite
    lag: dict[str, int] = field(default_factory=dict)
    oldest_unprocessed_age_s: float | None = None
    missing_models: set[str] = field(default_factory=set)
    seconds: Counter = field(default_factory=Counter)

    def add(self, reports: list[StageReport]) -> None:
        self.batches += 1
        for r in reports:
            self.rows_in[r.stage] += r.rows_in
            self.rows_out[r.stage] += r.rows_out
            self.quarantined.update(r.quarantined)
            self.duplicates += r.duplicates
            self.not_modelled += r.not_modelled
            self.seconds[r.stage] += r.seconds
            self.missing_models.update(r.missing_models)
            for result in r.gate_results:
                self.gate_results[result.suite] = result
            if r.stage == "bronze":
                self.lag = r.lag
                if r.oldest_unprocessed_age_s is not None:
                    self.oldest_unprocessed_age_s = max(
                        self.oldest_unprocessed_age_s or 0.0, r.oldest_unprocessed_age_s
                    )

    @property
    def gates(self) -> dict[str, dict[str, Any]]:
        """The latest result per suite, as JSON-ready summaries."""
        return {suite: result.to_dict() for suite, result in self.gate_results.items()}

    def merge(self, other: RunTotals) -> None:
        """Add another run's totals (a later run's lag and gates are the current ones)."""
        self.batches += other.batches
        for mine, theirs in (
            (self.rows_in, other.rows_in),
            (self.rows_out, other.rows_out),
            (self.quarantined, other.quarantined),
            (self.seconds, other.seconds),
        ):
            mine.update(theirs)
        self.duplicates += other.duplicates
        self.not_modelled += other.not_modelled
        self.gate_results.update(other.gate_results)
        self.lag = other.lag or self.lag
        ages = [a for a in (self.oldest_unprocessed_age_s, other.oldest_unprocessed_age_s) if a]
        self.oldest_unprocessed_age_s = max(ages) if ages else None
        self.missing_models |= other.missing_models

    @staticmethod
    def batch_line(reports: list[StageReport]) -> str:
        parts = [f"{r.stage} {r.rows_in}→{r.rows_out} ({r.seconds:.2f}s)" for r in reports]
        return "batch: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "rows_in": dict(self.rows_in),
            "rows_out": dict(self.rows_out),
            "quarantined_by_code": dict(self.quarantined),
            "duplicates_dropped": self.duplicates,
            "not_modelled": self.not_modelled,
            "gates": {k: v["success"] for k, v in self.gates.items()},
            "lag_messages": self.lag,
            "oldest_unprocessed_age_s": self.oldest_unprocessed_age_s,
            "models_without_champion": sorted(self.missing_models),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }

    def markdown(self) -> str:
        lines = [
            "# Micro-batch run",
            "",
            f"Batches: **{self.batches}**",
            "",
            "| stage | rows in | rows out | seconds |",
            "|---|---:|---:|---:|",
        ]
        for stage in self.rows_in:
            lines.append(
                f"| {stage} | {self.rows_in[stage]} | {self.rows_out[stage]} | "
                f"{self.seconds[stage]:.2f} |"
            )
        lines += [
            "",
            f"Duplicates dropped: **{self.duplicates}** · not modelled (kept in "
            f"bronze): **{self.not_modelled}**",
            "",
            "## Quarantine by code",
            "",
        ]
        lines += [f"- `{code}`: {n}" for code, n in sorted(self.quarantined.items())] or ["- none"]
        lines += ["", "## Gates", ""]
        lines += [
            f"- `{suite}`: {'passed' if g['success'] else 'FAILED'} "
            f"({g.get('evaluated_expectations', '?')} expectations)"
            for suite, g in self.gates.items()
        ] or ["- none evaluated"]
        lines += [
            "",
            "## Lag",
            "",
            f"- messages behind: {sum(self.lag.values())} {self.lag}",
            f"- oldest unprocessed event age at pickup: {self.oldest_unprocessed_age_s} s",
        ]
        if self.missing_models:
            lines += [
                "",
                "## Models",
                "",
                f"- no champion registered (no scores written): "
                f"{', '.join(sorted(self.missing_models))}",
            ]
        return "\n".join(lines)
