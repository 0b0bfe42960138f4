"""``lakehouse broker start|stop|status``: the embedded Kafka-API broker. Imports stay inside the
commands (``lakehouse --help`` in 0.17 s, see ``lakehouse/cli.py``)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The embedded Kafka-API broker (Apache Kafka, KRaft, one node).", no_args_is_help=True
)
console = Console()


def _external_or_none() -> str | None:
    from settings import get_settings

    return get_settings().kafka_bootstrap_servers


@app.command()
def start() -> None:
    """Start the broker, wait until it answers, create the topics; print the bootstrap address."""
    from lakehouse.broker import from_settings

    if external := _external_or_none():
        console.print(f"LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS is set ({external}): nothing to start.")
        return
    broker = from_settings()
    try:
        with console.status("starting the local broker (first start fetches its jars)…"):
            bootstrap = broker.start()
    except Exception as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"broker running, bootstrap servers: [bold]{bootstrap}[/bold]")


@app.command()
def stop() -> None:
    """Stop the broker; its data stays for the next start."""
    from lakehouse.broker import from_settings

    if _external_or_none():
        console.print("an external broker is configured: nothing to stop.")
        return
    console.print("broker stopped." if from_settings().stop() else "broker was not running.")


@app.command()
def status() -> None:
    """Whether the broker runs, and the end offset of every topic."""
    from ingest.offsets import end_offsets, per_topic
    from ingest.topics import ALL_TOPICS
    from lakehouse.broker import from_settings
    from settings import get_settings

    settings = get_settings()
    if settings.uses_embedded_broker:
        pid = from_settings().pid()
        if pid is None:
            console.print("local broker: [red]not running[/red] (lakehouse broker start)")
            raise typer.Exit(1)
        console.print(
            f"local broker: [green]running[/green] pid {pid} at {settings.bootstrap_servers}"
        )
    try:
        offsets = per_topic(end_offsets(settings.kafka_client_config(), ALL_TOPICS))
    except Exception as exc:
        console.print(f"[red]broker at {settings.bootstrap_servers} does not answer:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table("topic", "end offset (messages)")
    for topic in ALL_TOPICS:
        table.add_row(topic, str(offsets.get(topic, "missing")))
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``broker`` to the ``lakehouse`` app."""
    root.add_typer(app, name="broker")
