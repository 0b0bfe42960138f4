"""`lakehouse simulate …`: Stripe-like webhooks over HTTP or straight into the topics."""

from __future__ import annotations

import typer

app = typer.Typer(help="Simulate Stripe webhooks.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add ``simulate`` to the ``lakehouse`` app."""
    root.add_typer(app, name="simulate")
