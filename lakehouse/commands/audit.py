"""``lakehouse audit``: prove that nothing was lost or counted twice, layer by layer
(``flows.audit``); exits 1 when something is missing or doubled. Imports stay inside the command
(``lakehouse --help`` in 0.17 s, see ``lakehouse/cli.py``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from warehouse.audit import AuditReport, Section

console = Console()


def audit(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    all_rows: Annotated[
        bool, typer.Option("--all", help="every partition and day, not only those with news")
    ] = False,
) -> None:
    """Prove nothing was lost or doubled: broker vs bronze, bronze vs silver, silver vs gold.

    Broker offsets vs bronze per partition (missing and doubled offset ranges); per day, bronze =
    silver + quarantine + duplicates + not modelled; every eligible silver event scored once and
    merchant_daily equal to silver. Pending work is shown as pending. Exits 1 when something is
    missing or doubled."""
    from flows.audit import run_audit

    report = run_audit()
    if as_json:
        console.print_json(json.dumps(report.as_dict(), default=str))
    else:
        print_report(report, all_rows)
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: AuditReport, all_rows: bool = False, out: Console = console) -> None:
    """Each section's table and problems, then the verdict."""
    for section in report.sections:
        _print_section(section, all_rows, out)
    if report.ok:
        out.print("[bold green]complete:[/bold green] nothing missing, nothing doubled")
    else:
        out.print(f"[bold red]{len(report.problems)} problems[/bold red] (listed above)")


def _print_section(section: Section, all_rows: bool, out: Console) -> None:
    state = "[green]ok[/green]" if section.ok else "[red]problems[/red]"
    table = Table(*section.columns, title=f"{section.title}: {state}", title_justify="left")
    shown = section.rows if all_rows else [r for r in section.rows if _news(section, r)]
    for row in shown:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    if shown:
        out.print(table)
    else:
        out.print(f"{section.title}: {state} ({len(section.rows)} rows, nothing to show)")
    for problem in section.problems:
        out.print(f"  [red]✗[/red] {problem}", highlight=False)
    for note in section.notes:
        out.print(f"  [dim]{note}[/dim]", highlight=False)
    if section.pending:
        out.print(f"  [yellow]pending:[/yellow] {section.pending:,} not processed yet")


def _news(section: Section, row: tuple) -> bool:
    """A row worth showing by default: it has rows of its own, or something is wrong."""
    return not section.ok or any(isinstance(v, int) and v for v in row[1:])


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the ``lakehouse`` app."""
    app.command(name="audit")(audit)
