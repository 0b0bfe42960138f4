"""`lakehouse simulate …`: Stripe-like webhooks over HTTP or straight into the topics.

- ``send``: one signed delivery of one event type; prints the status and the response body.
- ``generate``: a seeded stream of signed deliveries at a rate, with a progress bar and a summary
  of responses by status.
- ``load``: the same stream written straight to the topics (no HTTP), for bulk loads and
  benchmarks; prints messages per topic and the rate.

Other modules add commands to ``app`` (``history``); heavy imports stay inside the commands.
"""

from __future__ import annotations

import random
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(help="Simulate Stripe webhooks.", no_args_is_help=True)
console = Console()

UrlOption = Annotated[
    str | None,
    typer.Option(
        help="receiver endpoint [default: http://LAKEHOUSE_RECEIVER_HOST:PORT/webhooks/stripe]"
    ),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        help="endpoint secret to sign with [default: the first the local receiver accepts]"
    ),
]
SeedOption = Annotated[
    int | None, typer.Option(help="seed of the event stream [default: random, printed]")
]
MalformedOption = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help="share of deliveries deliberately broken (0 to 1)"),
]


def _target(url: str | None, secret: str | None) -> tuple[str, str]:
    from lakehouse.stack import webhook_secrets
    from settings import get_settings

    settings = get_settings()
    host = "127.0.0.1" if settings.receiver_host in ("0.0.0.0", "::") else settings.receiver_host
    default_url = f"http://{host}:{settings.receiver_port}/webhooks/stripe"
    return url or default_url, secret or webhook_secrets(settings)[0]


def _seed(seed: int | None) -> int:
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        console.print(f"seed {seed} (repeat this stream with --seed {seed})")
    return seed


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def send(
    event_type: Annotated[
        str, typer.Option("--type", help="Stripe event type, e.g. charge.dispute.created")
    ] = "payment_intent.succeeded",
    invalid_signature: Annotated[
        bool, typer.Option(help="sign with a wrong secret (the receiver must answer 400)")
    ] = False,
    url: UrlOption = None,
    secret: SecretOption = None,
    seed: Annotated[int | None, typer.Option(help="seed of the event's random fields")] = None,
) -> None:
    """Send one signed Stripe event; print the status and the response body."""
    import httpx

    from simulator.events import encode, make_stripe_event
    from simulator.send import send_one

    url, secret = _target(url, secret)
    event = make_stripe_event(event_type, rng=random.Random(seed))
    try:
        response = send_one(encode(event), url, secret, invalid_signature=invalid_signature)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    colour = "green" if response.is_success else "yellow" if response.status_code < 500 else "red"
    console.print(f"{event['type']} {event['id']} -> [{colour}]{response.status_code}[/{colour}]")
    console.print(response.text, markup=False, highlight=False)


@app.command()
def generate(
    rate: Annotated[
        float, typer.Option(min=0.0, help="deliveries per second (0: as fast as possible)")
    ] = 50.0,
    duration: Annotated[
        float, typer.Option(min=0.0, help="seconds to run; --count wins if given")
    ] = 60.0,
    count: Annotated[int | None, typer.Option(min=1, help="number of deliveries")] = None,
    url: UrlOption = None,
    secret: SecretOption = None,
    seed: SeedOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight at most")] = 32,
    malformed_fraction: MalformedOption = 0.0,
    invalid_signature: Annotated[bool, typer.Option(help="sign every delivery wrongly")] = False,
) -> None:
    """Send a seeded stream of signed Stripe webhooks at a rate; summarize responses by status.

    Exits 1 if some deliveries could not reach the receiver at all.
    """
    import asyncio
    from datetime import UTC, datetime, timedelta

    from simulator.send import send_payloads
    from simulator.stream import generate_payloads

    url, secret = _target(url, secret)
    total = count if count is not None else max(1, int(rate * duration))
    stream_seed = _seed(seed)
    # the stream's clock runs faster than the sender: start it far enough back (each event
    # advances it half a second at most on average) and stop it at now, so nothing is dated
    # after the moment it is delivered
    now = datetime.now(UTC)
    payloads = generate_payloads(
        total,
        stream_seed,
        malformed_fraction=malformed_fraction,
        start=now - timedelta(seconds=total * 0.5),
        until=now,
    )
    console.print(f"sending {total:,} deliveries to {url}" + (f" at {rate:g}/s" if rate else ""))
    with _progress() as bar:
        task = bar.add_task("webhooks", total=total, rate="")
        summary = asyncio.run(
            send_payloads(
                (p.body for p in payloads),
                url,
                secret,
                rate=rate or None,
                concurrency=concurrency,
                invalid_signature=invalid_signature,
                on_response=lambda _: bar.advance(task),
            )
        )
    table = Table("status", "deliveries", "share", title="responses by status")
    for status, n in sorted(summary.by_status.items()):
        table.add_row(status, f"{n:,}", f"{n / summary.sent:.1%}")
    console.print(table)
    console.print(
        f"{summary.sent:,} sent in {summary.elapsed_s:.1f} s ({summary.rate:,.0f}/s), "
        f"{summary.accepted:,} accepted; latency p50 {summary.latency_ms(0.5):.1f} ms, "
        f"p99 {summary.latency_ms(0.99):.1f} ms"
    )
    if any(status.startswith("error:") for status in summary.by_status):
        raise typer.Exit(1)


@app.command()
def load(
    count: Annotated[int, typer.Option(min=1, help="number of deliveries")] = 1_000_000,
    seed: SeedOption = None,
    malformed_fraction: MalformedOption = 0.0,
    pool_size: Annotated[
        int, typer.Option(min=1, help="distinct bodies generated, then cycled with fresh ids")
    ] = 5_000,
) -> None:
    """Write a seeded stream straight to the topics (no HTTP): bulk loads and benchmarks.

    Messages are exactly those the receiver would write. Exits 1 if any delivery failed.
    """
    from ingest.topics import ensure_topics
    from settings import get_settings
    from simulator.direct import load as load_direct

    settings = get_settings()
    client_config = settings.kafka_client_config()
    ensure_topics(client_config, settings.topic_partitions)
    stream_seed = _seed(seed)
    console.print(f"writing {count:,} deliveries to {settings.bootstrap_servers}")
    with _progress() as bar:
        task = bar.add_task("messages", total=count, rate="")
        report = load_direct(
            count,
            stream_seed,
            client_config,
            malformed_fraction=malformed_fraction,
            pool_size=pool_size,
            progress=lambda done: bar.update(task, completed=done),
        )
    table = Table("topic", "messages", title="messages written")
    for topic, n in sorted(report.by_topic.items()):
        table.add_row(topic, f"{n:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{report.written:,}[/bold]")
    console.print(table)
    console.print(
        f"{report.written:,} messages in {report.elapsed_s:.1f} s ({report.rate:,.0f} messages/s)"
    )
    if report.failed or report.errors:
        console.print(f"[red]{sum(report.failed.values()):,} failed:[/red] {report.errors[:3]}")
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add ``simulate`` to the ``lakehouse`` app."""
    root.add_typer(app, name="simulate")
