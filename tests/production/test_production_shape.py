"""The production shape, run for real: the Iceberg catalog, MLflow's store and Prefect's database in
PostgreSQL, the warehouse and MLflow's artifacts on S3 (s3proxy), the broker as in every test.

One chain per module (servers once per session): a labelled history through the broker into
bronze/silver/gold, ``train-models`` as a Prefect flow on a Prefect server whose database is
PostgreSQL, fresh signed webhooks through the receiver, scored in gold, ``lakehouse sql`` on top;
then Apache Spark reads the same tables through Iceberg's JDBC catalog.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from flows.loop import run_loop
from flows.stages import Lakehouse
from lakehouse import stack, supervisor
from lakehouse.broker import LocalBroker
from lakehouse.cli import app
from lakehouse.localprod import ProductionShape
from lakehouse.supervisor import free_port
from settings import get_settings
from settings.config import S3_CHECKSUM_VARIABLES, S3_CLIENT_VARIABLES
from simulator.direct import write_bodies
from simulator.events import encode
from simulator.history import generate_history
from simulator.send import SendSummary, send_payloads
from simulator.stream import generate_payloads
from tests.support.broker import commit_group_offsets, end_offsets_of
from tests.support.history import ROUNDS, SMALL
from tests.support.server import serve
from warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "whsec_production_shape_test"
FRESH_WEBHOOKS = 300


#: The small history with twice its customers: dated up to now (the receiver's event-time rule),
#: it differs from run to run, and with 500 customers the churn model lost to its baseline on
#: 2 of 6 end times tried, so training promoted no churn champion; with 1,000 it won on all 6
#: (by 0.07 AUC or more).
HISTORY = {**SMALL, "customers": 1_000}


@dataclass
class Chain:
    """What the chain did, observed while it ran."""

    env: dict[str, str]
    shape: ProductionShape
    history_written: int
    sent: SendSummary
    fresh_ids: list[str]
    training: dict
    flow_run_states: list[str]
    sql_output: str


def drain() -> None:
    lh = Lakehouse()
    try:
        run_loop(lh, max_records=100_000, max_seconds=2.0, until_idle=True, run_for_seconds=600)
    finally:
        lh.close()


def train_on_a_prefect_server(shape: ProductionShape, home: Path) -> tuple[dict, list[str]]:
    """The train-models flow against a Prefect server whose database is PostgreSQL."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from flows.train_models import train_models

    port = free_port()
    server = stack.prefect_server(
        home / "prefect",
        port,
        home / "run",
        home / "logs",
        shape.postgres.url("prefect", "asyncpg"),
    )
    supervisor.start(server, timeout_s=240)
    try:
        api = f"http://127.0.0.1:{port}/api"
        with temporary_settings({PREFECT_API_URL: api, PREFECT_HOME: home / "prefect"}):
            summary = train_models(history_days=SMALL["days"], num_boost_round=ROUNDS)
            APILogWorker.drain_all(timeout=30)  # the flow's logs, while the server takes them
    finally:
        supervisor.stop(server)
    with psycopg.connect(_dsn(shape, "prefect")) as db:
        states = [row[0] for row in db.execute("SELECT state_type FROM flow_run")]
    return summary, states


def fresh_webhooks(count: int) -> list[bytes]:
    """Signed-to-be deliveries of events that have happened by now (as the demo sends them)."""
    now = datetime.now(UTC)
    payloads = generate_payloads(
        count * 2, seed=29, malformed_fraction=0.0, start=now - timedelta(days=2), mean_gap_s=60.0
    )
    return [p.body for p in payloads if orjson.loads(p.body)["created"] <= now.timestamp()][:count]


def _dsn(shape: ProductionShape, database: str) -> str:
    return f"host=127.0.0.1 port={shape.postgres.port} user=postgres dbname={database}"


@pytest.fixture(scope="module")
def chain(
    production_servers: ProductionShape,
    session_broker: LocalBroker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    from ingest.receiver import create_app

    home = tmp_path_factory.mktemp("production-home")
    group = f"test-production-{uuid.uuid4().hex[:8]}"
    commit_group_offsets(session_broker.bootstrap, group, end_offsets_of(session_broker.bootstrap))
    env = {
        **production_servers.environment(),
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS": session_broker.bootstrap,
        "LAKEHOUSE_CONSUMER_GROUP": group,
        "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS": SECRET,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in (*S3_CHECKSUM_VARIABLES, *S3_CLIENT_VARIABLES):  # undone with the context
            patch.setenv(name, "")
            patch.delenv(name)
        get_settings.cache_clear()
        history = generate_history(**HISTORY, end=datetime.now(UTC))
        config = get_settings().kafka_client_config()
        written = write_bodies((encode(e) for e in history), config, request_prefix="history")
        drain()
        training, states = train_on_a_prefect_server(production_servers, home)
        bodies = fresh_webhooks(FRESH_WEBHOOKS)
        with serve(create_app()) as url:
            sent = asyncio.run(send_payloads(bodies, f"{url}/webhooks/stripe", SECRET))
        drain()
        query = "SELECT count(*) AS n FROM silver.payment_events"
        sql = CliRunner().invoke(app, ["sql", query], catch_exceptions=False)
        fresh_ids = [orjson.loads(body)["id"] for body in bodies]
        yield Chain(env, production_servers, written.written, sent, fresh_ids, training, states,
                    sql.output)  # fmt: skip
    get_settings.cache_clear()


@pytest.fixture
def production_env(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> Chain:
    """The chain's settings, for a test that reads its lakehouse."""
    for name, value in chain.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return chain


def test_every_table_is_in_the_postgresql_catalog_with_its_files_on_s3(production_env) -> None:
    with psycopg.connect(_dsn(production_env.shape, "catalog")) as db:
        rows = db.execute(
            "SELECT table_namespace || '.' || table_name, metadata_location FROM iceberg_tables "
            "WHERE catalog_name = 'lakehouse'"
        ).fetchall()
    locations = dict(rows)
    assert set(locations) >= {
        "bronze.webhook_events",
        "silver.payment_events",
        "silver.quarantine",
        "gold.payment_scores",
        "gold.merchant_daily",
    }
    assert all(loc.startswith("s3://lakehouse/warehouse/") for loc in locations.values())
    bucket = production_env.shape.s3.folder / "buckets" / "lakehouse" / "warehouse"
    assert list((bucket / "silver" / "payment_events" / "data").rglob("*.parquet"))


def test_the_history_and_every_accepted_webhook_land_once(production_env) -> None:
    chain = production_env
    assert chain.sent.accepted == len(chain.fresh_ids) == FRESH_WEBHOOKS
    con = connect()
    bronze = con.sql("SELECT count(*) FROM bronze.webhook_events").fetchone()[0]
    assert bronze == chain.history_written + FRESH_WEBHOOKS
    ids = ", ".join(f"'{event_id}'" for event_id in chain.fresh_ids)
    silver = con.sql(
        f"SELECT count(*), count(DISTINCT provider_event_id) FROM silver.payment_events "
        f"WHERE provider_event_id IN ({ids})"
    ).fetchone()
    quarantined = con.sql(
        f"SELECT count(*) FROM silver.quarantine WHERE event_id IN ({ids})"
    ).fetchone()[0]
    assert silver[0] == silver[1] > 0.8 * FRESH_WEBHOOKS  # the rest: types not modelled
    assert quarantined == 0


def test_lakehouse_sql_answers_from_the_production_shape(production_env) -> None:
    expected = connect().sql("SELECT count(*) FROM silver.payment_events").fetchone()[0]
    assert (
        f"{expected:,}" in production_env.sql_output or str(expected) in production_env.sql_output
    )


def test_models_are_tracked_in_postgresql_with_artifacts_on_s3(production_env) -> None:
    chain = production_env
    assert {row["name"] for row in chain.training["models"].values()} == {
        "payments-fraud",
        "payments-retry",
        "payments-churn",
    }
    assert all(row["promoted"] for row in chain.training["models"].values())
    assert "COMPLETED" in chain.flow_run_states  # the flow run, in Prefect's PostgreSQL database
    with psycopg.connect(_dsn(chain.shape, "mlflow")) as db:
        aliases = db.execute("SELECT name, alias FROM registered_model_aliases").fetchall()
        locations = [r[0] for r in db.execute("SELECT artifact_location FROM experiments")]
    assert {alias for _, alias in aliases} == {"champion"} and len(aliases) == 3
    assert sum(loc.startswith("s3://mlflow/artifacts/") for loc in locations) == 3
    bucket = chain.shape.s3.folder / "buckets" / "mlflow" / "artifacts"
    assert any(path.name == "MLmodel" for path in bucket.rglob("MLmodel"))


def test_fresh_webhooks_are_scored_by_the_champions_in_gold(production_env) -> None:
    ids = ", ".join(f"'stripe:{event_id}'" for event_id in production_env.fresh_ids)
    scored = (
        connect()
        .sql(
            "SELECT count(*), count(fraud_score), count(churn_score), "
            "count(DISTINCT fraud_model_version) FROM gold.payment_scores "
            f"WHERE event_id IN ({ids})"
        )
        .fetchone()
    )
    assert scored[0] > 0 and scored[1] > 0 and scored[2] > 0 and scored[3] == 1


def spark_session(chain: Chain):
    """Spark ``local[2]`` with the lakehouse's catalog as ``lakehouse`` (the jars are local)."""
    from pyspark.sql import SparkSession

    from warehouse.engines import spark_catalog_conf

    jars = sorted(str(p) for p in chain.shape.jars.glob("*.jar") if "s3proxy" not in p.name)
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("lakehouse-production-shape-test")
        .config("spark.jars", ",".join(jars))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
    )
    for key, value in spark_catalog_conf(get_settings()).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def test_spark_reads_the_same_tables_through_icebergs_jdbc_catalog(production_env) -> None:
    queries = {
        "silver.payment_events": "SELECT count(*), sum(amount_minor), count(DISTINCT event_id) "
        "FROM {t}",
        "gold.merchant_daily": "SELECT count(*), sum(volume_minor), sum(payments_succeeded) "
        "FROM {t}",
    }
    con = connect()
    duckdb = {name: con.sql(q.format(t=name)).fetchone() for name, q in queries.items()}
    spark = spark_session(production_env)
    try:
        seen = {
            name: tuple(spark.sql(q.format(t=f"lakehouse.{name}")).collect()[0])
            for name, q in queries.items()
        }
    finally:
        spark.stop()
    assert seen == duckdb
    assert duckdb["silver.payment_events"][0] > 10_000 and duckdb["gold.merchant_daily"][0] > 0
