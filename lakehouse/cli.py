"""The ``lakehouse`` command. Each group lives in ``lakehouse/commands/`` and registers itself;
heavy imports stay inside the commands so that ``lakehouse --help`` answers at once."""

from __future__ import annotations

import typer

from lakehouse.commands import (
    broker,
    demo,
    history,
    mlflow,
    receiver,
    run,
    simulate,
    sql,
    stack,
)

app = typer.Typer(
    name="lakehouse",
    help="Payments Lakehouse: Stripe webhooks to Iceberg tables, scored and queryable.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
for module in (broker, receiver, simulate, history, sql, run, mlflow, stack, demo):
    module.register(app)

if __name__ == "__main__":
    app()
