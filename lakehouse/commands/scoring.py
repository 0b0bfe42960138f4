"""``lakehouse scoring``: serve the online scoring API with uvicorn (``serving.app``)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address [default: LAKEHOUSE_SCORING_HOST]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port [default: LAKEHOUSE_SCORING_PORT]")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve fraud, retry, churn and recovery answers from the MLflow champions (one uvicorn
    worker, uvloop, httptools, JSON logs). It follows silver and the champion aliases by itself:
    no restart after training."""
    import uvicorn

    from ingest.logs import log_config
    from settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host or settings.scoring_host,
        port=port or settings.scoring_port,
        loop="uvloop",
        http="httptools",
        log_config=log_config(log_level),
        log_level=log_level.lower(),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def register(app: typer.Typer) -> None:
    """Add ``scoring`` to the ``lakehouse`` app."""
    app.command("scoring")(serve)
