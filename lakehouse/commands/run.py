"""``lakehouse run <flow>``: every flow without a Prefect server, the same code deployments run.

Imports stay inside the commands (``lakehouse --help`` in 0.17 s, see ``lakehouse/cli.py``)."""

from __future__ import annotations

import json
from datetime import date, datetime

import typer
from rich.console import Console

from flows.loop import GOLD_EVERY_SECONDS

app = typer.Typer(help="Run a flow locally, without a Prefect server.", no_args_is_help=True)
console = Console()


def register(root: typer.Typer) -> None:
    """Add ``run`` to the ``lakehouse`` app."""
    root.add_typer(app, name="run")


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1) from exc


@app.command("microbatch")
def microbatch(
    until_idle: bool = typer.Option(True, help="stop once a batch finds nothing new"),
    max_records: int = typer.Option(200_000, help="most records per bronze batch"),
    max_seconds: float = typer.Option(5.0, help="longest wait for one bronze batch"),
    run_for_seconds: float = typer.Option(3600.0, help="stop after this long in any case"),
    gold_every_seconds: float = typer.Option(
        GOLD_EVERY_SECONDS, help="gold catches up with silver at most this often (and at the end)"
    ),
) -> None:
    """Drain the topics through bronze, silver and gold (warm loop)."""
    from flows.context import publish_data_docs, warm_lakehouse
    from flows.loop import run_loop
    from flows.stages import GateFailed

    lh = warm_lakehouse()
    try:
        totals = run_loop(
            lh,
            max_records=max_records,
            max_seconds=max_seconds,
            until_idle=until_idle,
            run_for_seconds=run_for_seconds,
            gold_every_seconds=gold_every_seconds,
            log=lambda line: console.print(line, highlight=False),
        )
    except GateFailed as exc:
        console.print("`lakehouse status` shows the held batch; release it with")
        console.print(
            "  lakehouse run release-held-batch --split|--accept|--quarantine --by … --reason …"
        )
        _fail(exc)
    finally:
        lh.close()
    docs = publish_data_docs(totals, lh)
    console.print_json(json.dumps(totals.as_dict()))
    if docs:
        console.print(f"Data Docs: {docs}")


@app.command("release-held-batch")
def release_held_batch(
    accept: bool = typer.Option(False, "--accept", help="promote the held batch as it is"),
    quarantine: bool = typer.Option(False, "--quarantine", help="quarantine the batch whole"),
    split: bool = typer.Option(
        False, "--split", help="promote the rows that pass, quarantine the rows the gate flagged"
    ),
    by: str = typer.Option(..., help="who decides (recorded)"),
    reason: str = typer.Option(..., help="why (recorded)"),
) -> None:
    """Decide on the batch a failed silver gate holds: accept it, quarantine it whole, or split
    it (`lakehouse status` shows the held batch)."""
    from flows.held import run_release

    chosen = [
        name
        for name, on in (("accept", accept), ("quarantine", quarantine), ("split", split))
        if on
    ]
    if len(chosen) != 1:
        _fail(ValueError("say exactly one of --accept, --quarantine or --split"))
    try:
        result = run_release(chosen[0], by, reason)
    except ValueError as exc:
        _fail(exc)
    console.print_json(json.dumps(result, default=str))


@app.command("replay-quarantine")
def replay_quarantine(
    code: list[str] = typer.Option(None, help="release every quarantined row with this code"),
    id: list[str] = typer.Option(None, help="release this quarantine_id or delivery_id"),  # noqa: A002
    by: str = typer.Option(..., help="who releases (recorded)"),
    reason: str = typer.Option(..., help="why: the fix that makes them valid now (recorded)"),
) -> None:
    """Release quarantined rows after a fix and run them through silver again."""
    from flows.replay import run_replay

    try:
        result = run_replay(codes=code or None, ids=id or None, released_by=by, reason=reason)
    except (ValueError, RuntimeError) as exc:
        _fail(exc)
    console.print_json(json.dumps(result))


@app.command("backfill")
def backfill(
    start: str = typer.Option(..., help="first day (YYYY-MM-DD, UTC) of bronze to rebuild from"),
    end: str = typer.Option(..., help="last day (inclusive)"),
) -> None:
    """Rebuild silver and gold for a date range from bronze."""
    from flows.backfill import run_backfill

    try:
        result = run_backfill(date.fromisoformat(start), date.fromisoformat(end))
    except (ValueError, RuntimeError) as exc:
        _fail(exc)
    console.print_json(json.dumps(result, default=str))


@app.command("reconcile")
def reconcile(
    since: str = typer.Option(
        ..., help="window start: YYYY-MM-DD or an ISO time (UTC unless it says otherwise)"
    ),
    until: str = typer.Option(None, help="window end, excluded (default: 15 minutes ago)"),
    failed_only: bool = typer.Option(
        False, "--failed-only", help="list only events whose webhook delivery failed"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="compare and record; send nothing"),
) -> None:
    """Check the provider's events of a window against bronze; send the missing ones."""
    from flows.reconcile import LOOKBACK_HOURS, run_reconcile, window_of
    from ingest.stripe_events import EventsNotListed

    try:
        window = window_of(_moment(since), _moment(until), LOOKBACK_HOURS)
        result = run_reconcile(window, failed_only=failed_only, dry_run=dry_run)
    except (ValueError, EventsNotListed) as exc:
        _fail(exc)
    console.print_json(json.dumps({**result.summary(), "per_day": result.per_day()}))
    try:
        result.raise_if_incomplete()
    except RuntimeError as exc:
        _fail(exc)


def _moment(text: str | None) -> datetime | None:
    """A date (``YYYY-MM-DD``) or an ISO time; None stays None."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time") from exc


@app.command("maintenance")
def maintenance(
    older_than_hours: float = typer.Option(24.0, help="expire snapshots older than this"),
) -> None:
    """Compact small files per partition and expire old snapshots."""
    from flows.maintenance import run_maintenance

    console.print_json(json.dumps(run_maintenance(older_than_hours=older_than_hours), default=str))


@app.command("train-models")
def train_models() -> None:
    """Train the fraud, retry and churn models on silver history and register them; rescore gold
    when a champion moved."""
    from flows.train_models import run_training

    console.print_json(json.dumps(run_training(), default=str))


@app.command("rescore")
def rescore(
    since: str = typer.Option(
        None, help="first day (YYYY-MM-DD, UTC) of gold to look at; default: the whole table"
    ),
) -> None:
    """Score the gold rows written without the current champions; rebuild their merchant_daily."""
    from flows.rescore import run_rescore
    from flows.stages import GateFailed

    try:
        result = run_rescore(date.fromisoformat(since) if since else None)
    except (ValueError, GateFailed) as exc:
        _fail(exc)
    console.print_json(json.dumps(result, default=str))
