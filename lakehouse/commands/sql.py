"""``lakehouse sql "SELECT …"``: DuckDB SQL over every lakehouse table (``silver.payment_events``,
…), printed as a table, CSV or JSON; optionally as of a snapshot id or a moment."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pyarrow as pa

console = Console()


class OutputFormat(StrEnum):
    """How the result is printed."""

    table = "table"
    csv = "csv"
    json = "json"


def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL; tables are namespace.table")],
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, csv or json")
    ] = OutputFormat.table,
    snapshot: Annotated[
        int | None, typer.Option("--snapshot", help="read as of this Iceberg snapshot id")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="read as of this ISO 8601 moment (UTC unless an offset)"),
    ] = None,
) -> None:
    """Run a SQL query against the lakehouse tables and print the result."""
    import duckdb

    from warehouse import sql as run_sql

    try:
        result = run_sql(query, snapshot_id=snapshot, as_of=_moment(as_of))
    except (duckdb.Error, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    {
        OutputFormat.table: _print_table,
        OutputFormat.csv: _print_csv,
        OutputFormat.json: _print_json,
    }[output](result)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"not an ISO 8601 timestamp: {text}", param_hint="--as-of"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_table(result: pa.Table) -> None:
    table = Table(*result.column_names, caption=f"{result.num_rows} rows")
    for row in zip(*(c.to_pylist() for c in result.columns), strict=True):
        table.add_row(*("[dim]NULL[/dim]" if v is None else str(v) for v in row))
    console.print(table)


def _print_csv(result: pa.Table) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.column_names)
    writer.writerows(zip(*(c.to_pylist() for c in result.columns), strict=True))


def _print_json(result: pa.Table) -> None:
    sys.stdout.write(json.dumps(result.to_pylist(), default=_json_value, ensure_ascii=False))
    sys.stdout.write("\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact, as the amounts are
    return str(value)


def register(app: typer.Typer) -> None:
    """Add ``sql`` to the ``lakehouse`` app."""
    app.command(name="sql")(sql)
