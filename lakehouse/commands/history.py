"""`lakehouse simulate history`: the labelled synthetic history the models learn from.

Sent as signed webhooks to the receiver (default) or, with ``--direct``, written straight to the
topics exactly as the receiver would write them; either way it then flows through bronze and
silver like any other event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console()


def history(
    days: Annotated[int, typer.Option(min=1, help="days of history, ending now")] = 90,
    customers: Annotated[int, typer.Option(min=10, help="simulated customers")] = 2000,
    merchants: Annotated[
        int | None, typer.Option(min=1, help="merchants [default: one per 25 customers]")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed: the same seed gives the same events")] = 7,
    fraud_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of customers whose card is abused")
    ] = 0.08,
    end: Annotated[
        datetime | None, typer.Option(help="end of the history, UTC [default: this hour]")
    ] = None,
    direct: Annotated[
        bool, typer.Option("--direct", help="write straight to the topics instead of HTTP")
    ] = False,
    url: Annotated[str | None, typer.Option(help="receiver endpoint (HTTP mode)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight (HTTP mode)")] = 32,
) -> None:
    """Generate the labelled history (fraud, declines and retries, churn) and deliver it."""
    from simulator.events import encode
    from simulator.history import generate_history

    end_utc = end.replace(tzinfo=end.tzinfo or UTC) if end else None
    events = generate_history(days, customers, merchants, seed, end_utc, fraud_rate=fraud_rate)
    bodies = (encode(event) for event in events)
    where = "the topics" if direct else "the receiver"
    console.print(f"history: {days} days, {customers:,} customers, seed {seed} -> {where}")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("events", total=None)
        if direct:
            lines, ok = _write_direct(bodies, lambda done: bar.update(task, completed=done))
        else:
            lines, ok = _send(bodies, url, concurrency, lambda: bar.advance(task))
    for line in lines:
        console.print(line)
    if not ok:
        raise typer.Exit(1)


def _write_direct(
    bodies: Iterable[bytes], progress: Callable[[int], None]
) -> tuple[list[str], bool]:
    """Messages as the receiver would write them, straight to the topics; summary lines, ok."""
    from ingest.topics import ensure_topics
    from settings import get_settings
    from simulator.direct import write_bodies

    settings = get_settings()
    client_config = settings.kafka_client_config()
    ensure_topics(client_config, settings.topic_partitions)
    report = write_bodies(
        bodies, client_config, progress=progress, progress_every=5_000, request_prefix="history"
    )
    lines = [f"  {topic}: {n:,}" for topic, n in sorted(report.by_topic.items())]
    lines.append(f"{report.written:,} messages in {report.elapsed_s:.1f} s")
    if report.failed or report.errors:
        lines.append(f"[red]{sum(report.failed.values()):,} failed:[/red] {report.errors[:3]}")
        return lines, False
    return lines, True


def _send(
    bodies: Iterable[bytes], url: str | None, concurrency: int, advance: Callable[[], None]
) -> tuple[list[str], bool]:
    """Signed webhooks to the receiver; summary lines, and whether every one was accepted."""
    import asyncio

    from lakehouse.commands.simulate import _target
    from simulator.send import send_payloads

    url, secret = _target(url, None)
    summary = asyncio.run(
        send_payloads(bodies, url, secret, concurrency=concurrency, on_response=lambda _: advance())
    )
    lines = [f"  {status}: {n:,}" for status, n in sorted(summary.by_status.items())]
    lines.append(
        f"{summary.sent:,} sent in {summary.elapsed_s:.1f} s, {summary.accepted:,} accepted"
    )
    return lines, summary.accepted == summary.sent


def register(app: typer.Typer) -> None:
    """Add ``history`` to the ``lakehouse simulate`` group (``app`` is the root, unused)."""
    from lakehouse.commands.simulate import app as simulate_app

    simulate_app.command("history")(history)
