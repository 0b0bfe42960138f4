"""``lakehouse demo``: the whole platform on the embedded stack, in one command.

Starts the stack (broker, Prefect server and worker with the deployments, receiver, MLflow UI,
scoring API), writes a labelled history, lets the scheduled ``microbatch`` deployment land it,
trains and registers the models and rescores the history landed before them (so
``gold.merchant_daily`` has its fraud column), asks the scoring API (which picks up the new
champions by itself) each of its questions once about a customer of the history, sends fresh
webhooks through the receiver (some malformed, one with a bad signature), waits until they are
scored in gold, and prints what a newcomer should look at. The stack keeps running afterwards:
``lakehouse down`` stops it. Imports stay inside the commands (``lakehouse --help`` in 0.17 s, see
``lakehouse/cli.py``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table

console = Console()

QUERIES = {
    "Volume by currency (silver)": """
        SELECT currency, count(*) AS payments, sum(amount) AS volume
        FROM silver.payment_events WHERE event_type = 'payment.succeeded'
        GROUP BY 1 ORDER BY payments DESC LIMIT 8""",
    "Declines and the recommended retry delay (gold)": """
        SELECT e.decline_code, count(*) AS failures,
               round(avg(s.retry_delay_hours), 1) AS avg_delay_h,
               round(avg(s.retry_success_probability), 3) AS p_success
        FROM silver.payment_events e
        LEFT JOIN gold.payment_scores s USING (event_id)
        WHERE e.event_type = 'payment.failed'
        GROUP BY 1 ORDER BY failures DESC LIMIT 8""",
    "Busiest merchant-days (gold.merchant_daily)": """
        SELECT merchant_id, day, currency, payments_succeeded, volume,
               round(refund_rate, 3) AS refund_rate, round(mean_fraud_score, 3) AS fraud
        FROM gold.merchant_daily ORDER BY payments_succeeded DESC LIMIT 8""",
}


def register(root: typer.Typer) -> None:
    """Add ``demo`` to the ``lakehouse`` app."""
    root.command("demo")(demo)


def demo(
    days: int = typer.Option(90, help="days of labelled history"),
    customers: int = typer.Option(1500, help="customers in the history"),
    webhooks: int = typer.Option(400, help="fresh webhooks sent through the receiver"),
    timeout_s: float = typer.Option(900, help="give up waiting for the pipeline after this"),
) -> None:
    """Run the platform end to end on the embedded stack and show the results."""
    from lakehouse import stack
    from settings import get_settings

    settings = get_settings()
    console.rule("1/6 starting the local stack")
    urls = stack.up(settings, step=lambda part: console.print(f"  starting {part}…"))
    console.rule("2/6 labelled history → topics → bronze/silver/gold (the microbatch deployment)")
    written = _write_history(days, customers)
    console.print(f"  wrote {written:,} history events; waiting for the pipeline…")
    _wait_caught_up(timeout_s)
    console.rule("3/6 training the models on silver (MLflow registry), rescoring gold")
    _print_training(_train())
    console.rule("4/6 the scoring API: each endpoint once, for a customer of the history")
    _ask_scoring(settings, timeout_s)
    console.rule("5/6 fresh webhooks through the receiver")
    _print_responses(_send_webhooks(settings, webhooks))
    _wait_caught_up(timeout_s)
    console.rule("6/6 what landed")
    _print_tables()
    _print_urls(urls)


def _write_history(days: int, customers: int) -> int:
    from settings import get_settings
    from simulator.direct import write_bodies
    from simulator.events import encode
    from simulator.history import generate_history

    events = generate_history(days, customers, seed=7)
    report = write_bodies(
        (encode(e) for e in events),
        get_settings().kafka_client_config(),
        request_prefix="demo-history",
    )
    return report.written


def _caught_up() -> bool:
    """No lag on the topics, and every layer has read the newest snapshot of the one below."""
    from flows.context import Lakehouse
    from lakehouse.status import topic_lag
    from settings import get_settings
    from warehouse import tables as T
    from warehouse.watermarks import watermark

    if any(topic_lag(get_settings()).values()):
        return False
    lh = Lakehouse()
    pairs = [
        (T.BRONZE_WEBHOOK_EVENTS, T.SILVER_PAYMENT_EVENTS),
        (T.SILVER_PAYMENT_EVENTS, T.GOLD_PAYMENT_SCORES),
        (T.SILVER_PAYMENT_EVENTS, T.GOLD_MERCHANT_DAILY),
    ]
    for source, reader in pairs:
        current = lh.table(source).current_snapshot()
        if current is not None and watermark(lh.table(reader)) != current.snapshot_id:
            return False
    return True


def _wait_caught_up(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status("the scheduled microbatch deployment is working (Prefect UI shows it)…"):
        while not _caught_up():
            if time.monotonic() > deadline:
                console.print(
                    "[red]the pipeline did not catch up in time[/red]: see the Prefect "
                    "UI's flow runs, or `lakehouse run microbatch` to run it here"
                )
                raise typer.Exit(1)
            time.sleep(3)
    console.print("  all layers caught up.")


def _train() -> dict:
    from flows.train_models import run_training

    with console.status("training fraud, retry and churn models, then rescoring gold…"):
        return run_training()


def _print_training(run: dict) -> None:
    table = Table("model", "version", "metric", "holdout", "baseline", "champion")
    for row in run["models"].values():
        metric = row["metric"]
        table.add_row(
            row["name"],
            str(row["version"]),
            metric,
            f"{row['holdout'][metric]:.3f}",
            f"{row['baseline_holdout'][metric]:.3f}",
            "yes" if row["promoted"] else "no: " + row["reason"],
        )
    console.print(table)
    rescored = run["rescore"]
    if rescored:
        console.print(
            f"  rescored {rescored['rows_rescored']:,} gold rows written before the champions, "
            f"on {rescored['days_rescored']} days; merchant_daily rebuilt for them"
        )


def _ask_scoring(settings, timeout_s: float) -> None:
    """Wait until the scoring API serves the champions, then ask each endpoint about the newest
    payment of a customer of the history (a declined one for retry and recovery), as if it
    happened now; print question and answer."""
    import httpx
    import orjson

    from serving.events import CHURN_PATH, FRAUD_PATH, RECOVERY_PATH, RETRY_PATH, request_body

    base = f"http://{settings.scoring_host}:{settings.scoring_port}"
    deadline = time.monotonic() + timeout_s
    with console.status("waiting for the scoring API to load the champions…"):
        while httpx.get(f"{base}/health/ready", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                console.print(f"[red]the scoring API is not ready[/red]: {base}/health/ready")
                raise typer.Exit(1)
            time.sleep(1)
    rows = _newest_payments()
    now = datetime.now(UTC).isoformat()
    for path, kind in (
        (FRAUD_PATH, "payment.succeeded"),
        (RETRY_PATH, "payment.failed"),
        (CHURN_PATH, "payment.succeeded"),
        (RECOVERY_PATH, "payment.failed"),
    ):
        body = request_body({**rows[kind], "event_id": None}, path)
        (body["payment"] if path == CHURN_PATH else body)["created_at"] = now
        answer = httpx.post(f"{base}{path}", json=body, timeout=30)
        console.print(f"[bold]POST {path}[/bold] → {answer.status_code}")
        console.print_json(orjson.dumps(answer.json()).decode())


def _newest_payments() -> dict[str, dict]:
    """The newest succeeded and failed payment of a known customer in silver, by event type."""
    from ml.features import INPUT_COLUMNS
    from warehouse import connect

    columns = ", ".join([*INPUT_COLUMNS, "amount_minor"])
    sql = f"""
        SELECT {columns} FROM silver.payment_events
        WHERE customer_id IS NOT NULL AND event_type IN ('payment.succeeded', 'payment.failed')
        QUALIFY row_number() OVER (PARTITION BY event_type ORDER BY provider_created_at DESC) = 1"""
    result = connect().execute(sql)
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    return {row["event_type"]: row for row in rows}


def _send_webhooks(settings, count: int):
    from lakehouse.stack import webhook_secrets
    from simulator.send import send_one, send_payloads
    from simulator.stream import generate_payloads

    url = f"http://{settings.receiver_host}:{settings.receiver_port}/webhooks/stripe"
    secret = webhook_secrets(settings)[0]
    now = datetime.now(UTC)
    payloads = generate_payloads(
        count * 2,
        seed=int(time.time()),
        malformed_fraction=0.05,
        start=now - timedelta(days=2),
        mean_gap_s=60.0,
    )
    # stories continue into later refunds and disputes: send only what has happened by now
    bodies = [p.body for p in payloads if _created(p.body) <= now.timestamp()][:count]
    bad = send_one(bodies[0], url, secret, invalid_signature=True)
    console.print(f"  a forged signature is answered {bad.status_code}: {bad.text}")
    return asyncio.run(send_payloads(bodies, url, secret, concurrency=16))


def _created(body: bytes) -> float:
    """The event's ``created`` (0 when the body is broken on purpose)."""
    import orjson

    try:
        created = orjson.loads(body).get("created", 0)
    except (orjson.JSONDecodeError, AttributeError):
        return 0.0
    return created if isinstance(created, int | float) else 0.0


def _print_responses(summary) -> None:
    console.print(
        f"  sent {summary.sent:,} webhooks at {summary.rate:,.0f}/s; responses: "
        f"{dict(sorted(summary.by_status.items()))}"
    )


def _print_tables() -> None:
    from warehouse import connect

    con = connect()
    counts = Table("table", "rows", title="rows per layer")
    for name in (
        "bronze.webhook_events",
        "silver.payment_events",
        "silver.quarantine",
        "gold.payment_scores",
        "gold.merchant_daily",
    ):
        counts.add_row(name, f"{con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]:,}")
    console.print(counts)
    _print_query(
        con,
        "Quarantine by code",
        "SELECT error_code, count(*) AS rows FROM silver.quarantine GROUP BY 1 ORDER BY 2 DESC",
    )
    for title, sql in QUERIES.items():
        _print_query(con, title, sql)


def _print_query(con, title: str, sql: str) -> None:
    result = con.execute(sql)
    table = Table(*[d[0] for d in result.description], title=title)
    for row in result.fetchall():
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


def _print_urls(urls: dict[str, str]) -> None:
    table = Table("what", "where", title="Payments Lakehouse is running (lakehouse down stops it)")
    for name, where in urls.items():
        table.add_row(name, where)
    table.add_row("SQL", 'lakehouse sql "SELECT * FROM gold.merchant_daily LIMIT 10"')
    table.add_row("notebooks", "make notebook")
    console.print(table)
