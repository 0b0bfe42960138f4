"""``lakehouse up | down | status``: the whole local stack in one command (``lakehouse.stack``,
``lakehouse.status``). Imports stay inside the commands (``lakehouse --help`` in 0.17 s, see
``lakehouse/cli.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from settings import Settings

console = Console()


def up() -> None:
    """Start the broker, Prefect (server, deployments, worker), the receiver, the MLflow UI and
    the scoring API."""
    from lakehouse import stack
    from settings import get_settings

    settings = get_settings()
    try:
        with console.status("starting…") as status:
            urls = stack.up(settings, step=lambda part: status.update(f"starting {part}…"))
    except Exception as exc:
        console.print(f"[red]error:[/red] {exc}")
        console.print("The parts started so far keep running; `lakehouse down` stops them.")
        raise typer.Exit(1) from exc
    table = Table("part", "where", title="Payments Lakehouse is running")
    for name, url in urls.items():
        table.add_row(name, url)
    console.print(table)
    console.print(f"logs: {settings.logs_dir}    stop everything: [bold]lakehouse down[/bold]")


def down() -> None:
    """Stop every part of the local stack (data stays for the next `lakehouse up`)."""
    from lakehouse import stack
    from settings import get_settings

    with console.status("stopping…"):
        stopped = stack.down(get_settings())
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


def status() -> None:
    """Each part running or not, consumer lag per topic, the freshness of every table, and a
    batch the silver gates hold (with the commands that release it)."""
    from lakehouse import status as read
    from settings import get_settings

    settings = get_settings()
    parts = read.parts_status(settings)
    table = Table("part", "state", "detail")
    for part in parts:
        state = "[green]running[/green]" if part.running else "[red]stopped[/red]"
        table.add_row(part.name, state, part.detail)
    console.print(table)
    if parts[0].running:
        _print_lag(settings)
    else:
        console.print("consumer lag: the broker is not running")
    _print_freshness(settings)
    held = _print_hold(settings)
    if held or not all(p.running for p in parts):
        raise typer.Exit(1)


def _print_lag(settings: Settings) -> None:
    from lakehouse.status import topic_lag

    try:
        lag = topic_lag(settings)
    except Exception as exc:  # noqa: BLE001 - a status report, not a crash
        console.print(f"consumer lag: [red]unavailable[/red] ({exc})")
        return
    if not lag:
        console.print("consumer lag: no topics yet (`lakehouse broker start` creates them)")
        return
    table = Table("topic", "lag (messages not yet in bronze)", title="consumer lag")
    for topic, messages in lag.items():
        table.add_row(topic, str(messages))
    console.print(table)


def _print_freshness(settings: Settings) -> None:
    from lakehouse.status import table_freshness

    try:
        fresh = table_freshness(settings)
    except Exception as exc:  # noqa: BLE001 - a status report, not a crash
        console.print(f"table freshness: [red]unavailable[/red] ({exc})")
        return
    if not fresh:
        console.print("tables: none yet (the first micro-batch creates them)")
        return
    now = datetime.now(UTC)
    table = Table("table", "newest snapshot (UTC)", "age", title="table freshness")
    for name, at in fresh.items():
        if at is None:
            table.add_row(name, "never written", "")
        else:
            table.add_row(name, at.strftime("%Y-%m-%d %H:%M:%S"), _age(now - at))
    console.print(table)


def _print_hold(settings: Settings) -> bool:
    """Print the batch silver's gates hold and how to release it; whether there is one."""
    from lakehouse.status import silver_hold

    try:
        hold = silver_hold(settings)
    except Exception as exc:  # noqa: BLE001 - a status report, not a crash
        console.print(f"held batch: [red]unavailable[/red] ({exc})")
        return False
    if hold is None:
        console.print("held batch: none (silver promotes every batch)")
        return False
    since = datetime.fromisoformat(hold.since)
    console.print(
        f"[red]held batch[/red]: {hold.rows:,} bronze rows held by {', '.join(hold.gates)} since "
        f"{since:%Y-%m-%d %H:%M:%S} UTC ({_age(datetime.now(UTC) - since)})"
    )
    for failure in hold.failed:
        console.print(f"  failed: {failure}", highlight=False)
    console.print("release it with one of:")
    for command in hold.release_commands:
        console.print(f"  {command}", highlight=False, markup=False)
    return True


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down`` and ``status`` to the ``lakehouse`` app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
