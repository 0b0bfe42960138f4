"""``lakehouse receiver``: serve the Stripe webhook receiver with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address [default: LAKEHOUSE_RECEIVER_HOST]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port [default: LAKEHOUSE_RECEIVER_PORT]")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve the webhook receiver (one uvicorn worker, uvloop, httptools, JSON logs on stdout).

    Scale out with more processes behind a load balancer: each owns one producer.
    """
    import uvicorn
    from pydantic import ValidationError

    from ingest.logs import log_config
    from ingest.receiver import ReceiverConfigError, require_secrets
    from settings import get_settings

    try:
        settings = get_settings()
        require_secrets(settings)
    except ValidationError as exc:
        typer.echo(f"error: invalid settings: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from exc
    except ReceiverConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        "ingest.receiver:create_app",
        factory=True,
        host=host or settings.receiver_host,
        port=port or settings.receiver_port,
        loop="uvloop",
        http="httptools",
        log_config=log_config(log_level),
        log_level=log_level.lower(),
        access_log=False,  # the receiver logs one structured line per webhook itself
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def register(app: typer.Typer) -> None:
    """Add ``receiver`` to the ``lakehouse`` app."""
    app.command("receiver")(serve)
