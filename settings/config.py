"""Settings: the one place configuration is read.

Every value comes from an environment variable with the prefix ``LAKEHOUSE_`` (or a ``.env`` file
in the working directory), flat names: ``LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS``. Defaults describe the
embedded stack under ``./.lakehouse/``. Nothing else in the project reads ``os.environ``; code calls
``get_settings()`` (cached) and tests call ``get_settings.cache_clear()`` after changing the
environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Passed explicitly by the embedded stack (``lakehouse up``/``demo``) only; never a default, and
#: refused when ``environment`` is ``production``.
DEV_WEBHOOK_SECRET = "whsec_lakehouse_local_development_only"

#: The AWS SDKs' variables for their integrity checksums (AWS SDK for C++ under pyarrow, botocore
#: under MLflow, AWS SDK for Java v2 under Spark): since early 2025 the SDKs checksum every upload
#: by default, which S3-compatible stores such as s3proxy answer with XAmzContentSHA256Mismatch.
S3_CHECKSUM_VARIABLES = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")
#: boto3 (MLflow's artifact client) takes its endpoint and credentials from the environment only:
#: these variables get the catalog properties' values.
S3_CLIENT_VARIABLES = {
    "MLFLOW_S3_ENDPOINT_URL": "s3.endpoint",
    "AWS_ACCESS_KEY_ID": "s3.access-key-id",
    "AWS_SECRET_ACCESS_KEY": "s3.secret-access-key",
    "AWS_SESSION_TOKEN": "s3.session-token",
    "AWS_DEFAULT_REGION": "s3.region",
}


class Settings(BaseSettings):
    """All configuration of the platform, one field per knob."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_", env_file=".env", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production"] = Field(
        "development", description="production refuses development secrets and placeholders"
    )
    home: Path = Field(
        Path(".lakehouse"), description="folder of the embedded stack's data, logs and caches"
    )

    # --- broker -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None,
        description="an external Kafka-API broker (Redpanda); unset = the embedded local broker",
    )
    kafka_security: dict[str, str] = Field(
        default_factory=dict,
        description="extra librdkafka client properties (sasl.*, ssl.*) as JSON for a cluster",
    )
    broker_port: int = Field(9092, description="port of the embedded broker's client listener")
    broker_controller_port: int = Field(9093, description="port of the embedded KRaft controller")
    broker_heap: str = Field("512m", description="JVM heap of the embedded broker")
    topic_partitions: int = Field(3, description="partitions of each topic created by the stack")
    consumer_group: str = Field("lakehouse-bronze", description="consumer group of the loader")
    consumer_instance_id: str | None = Field(
        None,
        description="static group membership id: a restarted loader takes its partitions back "
        "at once; give each concurrent loader its own",
    )
    consumer_session_timeout_ms: int = Field(
        10_000, description="how soon the group reassigns a dead loader's partitions (ms)"
    )
    consumer_process: bool = Field(
        True,
        description="consume in a child process, so the client's per-message work does not hold "
        "the micro-batch loop's GIL (false: in the loop's own process)",
    )

    # --- receiver -----------------------------------------------------------------------------
    stripe_webhook_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Stripe endpoint secrets (whsec_…), comma separated; several during rotation. "
        "No default: a receiver without one refuses to start",
    )
    stripe_signature_tolerance_s: int = Field(
        300, description="max age (and max future skew) of a signature timestamp, seconds"
    )
    receiver_host: str = Field("127.0.0.1", description="bind address of the receiver")
    receiver_port: int = Field(8000, description="port of the receiver")
    receiver_max_body_bytes: int = Field(1_048_576, description="largest accepted body (413 above)")
    receiver_max_json_depth: int = Field(64, description="deepest accepted JSON nesting")
    receiver_produce_timeout_s: float = Field(
        5.0, description="deadline for the broker's acknowledgement before answering 503"
    )
    receiver_read_timeout_s: float = Field(
        10.0, description="longest a webhook body may take to arrive before the answer is 408"
    )
    receiver_max_concurrent_requests: int = Field(
        1024, description="webhooks handled at once; beyond it 503 with Retry-After", gt=0
    )
    receiver_metrics_port: int | None = Field(
        None,
        description="serve /metrics on this port of the receiver's host instead of beside the "
        "webhooks (a port the internet does not reach)",
    )

    # --- warehouse ----------------------------------------------------------------------------
    catalog_name: str = Field("lakehouse", description="Iceberg catalog name")
    catalog_uri: str | None = Field(
        None,
        description="Iceberg catalog: unset = SQLite SQL catalog under home; "
        "postgresql+psycopg://… = SQL catalog in PostgreSQL (Iceberg's JDBC catalog layout); "
        "http(s):// = REST",
    )
    warehouse: str | None = Field(
        None,
        description="Iceberg warehouse location: unset = file warehouse under home; "
        "s3://bucket/prefix (endpoint and credentials in catalog_properties)",
    )
    catalog_properties: dict[str, str] = Field(
        default_factory=dict,
        description="extra pyiceberg catalog properties as JSON (s3.endpoint, s3.access-key-id, "
        "s3.secret-access-key, s3.region, …); DuckDB and MLflow's artifact client use the same",
    )
    s3_checksum_mode: Literal["when_required", "when_supported"] = Field(
        "when_required",
        description="when the AWS SDKs checksum S3 requests and responses: when_required works "
        "with every S3-compatible store (MinIO, s3proxy, Ceph); when_supported is AWS's default",
    )

    # --- pipeline -----------------------------------------------------------------------------
    batch_max_records: int = Field(200_000, description="most records one bronze batch consumes")
    batch_max_seconds: float = Field(5.0, description="longest one bronze batch waits for records")
    amount_limits_minor: dict[str, int] = Field(
        default_factory=dict,
        description='largest amount per currency in minor units as JSON ({"IDR": 150000000000}), '
        "overriding the provider's documented limit; above it INVALID_AMOUNT_TOO_LARGE",
    )
    event_max_age_days: float = Field(
        400.0,
        description="row rule: an event created longer than this before it was received is "
        "INVALID_EVENT_TIME (the labelled history reaches 90 days back by default)",
    )
    event_max_future_seconds: float = Field(
        300.0,
        description="row rule: an event created more than this after it was received (the "
        "provider's clock skew) is INVALID_EVENT_TIME",
    )
    gate_max_quarantine_share: float = Field(
        0.5, description="silver gate: a batch quarantining a larger share of its rows is held"
    )
    gate_quarantine_share_min_rows: int = Field(
        100, description="silver gate: batches with fewer bronze rows skip the quarantine share"
    )
    gold_include_test_mode: bool = Field(
        False, description="score and aggregate test-mode events (livemode false) in gold too"
    )

    # --- reconciliation with the provider (flows/reconcile.py) --------------------------------
    stripe_api_key: SecretStr | None = Field(
        None,
        description="Stripe key that may read Events (a restricted key with events read access), "
        "for reconciliation only; secret, never logged",
    )
    stripe_api_base: str | None = Field(
        None,
        description="Stripe API base URL: unset = https://api.stripe.com; a Stripe-compatible "
        "mock or test stand-in otherwise",
    )
    stripe_event_types: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="event types the webhook endpoint subscribes to, comma separated (Stripe "
        "takes at most 20): reconciliation lists only these; empty = every type",
    )
    stripe_max_network_retries: int = Field(
        3, description="retries of a Stripe API request after a network error, 409 or 5xx"
    )
    stripe_rate_limit_retries: int = Field(
        8, description="retries of an Events API page answered 429 (rate limited)"
    )
    stripe_rate_limit_backoff_s: float = Field(
        1.0, description="first wait after a 429, doubled on each retry (at most 32x)"
    )
    reconcile_send_timeout_s: float = Field(
        30.0, description="deadline for the broker to acknowledge the recovered events"
    )

    # --- online scoring (serving/) -------------------------------------------------------------
    scoring_host: str = Field("127.0.0.1", description="bind address of the scoring API")
    scoring_port: int = Field(8100, description="port of the scoring API (`lakehouse scoring`)")
    scoring_refresh_seconds: float = Field(
        2.0,
        description="how often the scoring API looks for a new silver snapshot (its online "
        "features) and a moved champion alias",
        gt=0,
    )

    # --- services of the local stack ----------------------------------------------------------
    prefect_port: int = Field(4200, description="port of the local Prefect server")
    mlflow_port: int = Field(5000, description="port of the local MLflow UI")
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI: unset = SQLite store under home; "
        "postgresql+psycopg://… = a store in PostgreSQL; http(s):// = an MLflow server",
    )
    mlflow_artifacts: str | None = Field(
        None,
        description="where MLflow keeps models: unset = folder under home; s3://bucket/prefix "
        "(endpoint and credentials from catalog_properties)",
    )
    prefect_database_url: str | None = Field(
        None,
        description="database of the local stack's Prefect server: unset = SQLite under home; "
        "postgresql+asyncpg://…",
    )

    @field_validator("stripe_webhook_secrets", "stripe_event_types", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("amount_limits_minor", mode="after")
    @classmethod
    def _upper_case_currencies(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {code: limit for code, limit in value.items() if limit < 0}
        if bad:
            raise ValueError(f"amount limits must not be negative: {bad}")
        return {code.upper(): limit for code, limit in value.items()}

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production":
            if not self.stripe_webhook_secrets or DEV_WEBHOOK_SECRET in self.stripe_webhook_secrets:
                raise ValueError(
                    "LAKEHOUSE_STRIPE_WEBHOOK_SECRETS must be set to real endpoint secrets "
                    "in production"
                )
            if self.stripe_signature_tolerance_s <= 0:
                raise ValueError(
                    "LAKEHOUSE_STRIPE_SIGNATURE_TOLERANCE_S must be positive in production "
                    "(0 would accept a captured delivery replayed at any time)"
                )
        if len(self.stripe_event_types) > 20:
            raise ValueError("LAKEHOUSE_STRIPE_EVENT_TYPES: Stripe lists at most 20 types at once")
        return self

    # --- derived locations (not settings of their own) -----------------------------------------
    @property
    def home_abs(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: the external broker if configured, else the embedded one."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def broker_dir(self) -> Path:
        return self.home_abs / "broker"

    @property
    def cache_dir(self) -> Path:
        return self.home_abs / "cache"

    @property
    def logs_dir(self) -> Path:
        return self.home_abs / "logs"

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{self.home_abs / 'catalog.db'}"

    @property
    def resolved_warehouse(self) -> str:
        return self.warehouse or (self.home_abs / "warehouse").as_uri()

    @property
    def data_docs_dir(self) -> Path:
        return self.home_abs / "data_docs"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_abs / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home_abs / "mlartifacts"

    @property
    def resolved_mlflow_artifacts(self) -> str:
        """MLflow's artifact root as a URI: the configured one, else the folder under home."""
        return (self.mlflow_artifacts or self.mlflow_artifacts_dir.as_uri()).rstrip("/")

    @property
    def openapi_enabled(self) -> bool:
        """The receiver's /docs and /openapi.json: development only."""
        return self.environment != "production"

    def s3_environment(self) -> dict[str, str]:
        """Variables of the AWS SDKs under pyarrow, MLflow (boto3) and Spark: the checksum mode
        (:data:`S3_CHECKSUM_VARIABLES`) and, for boto3, the endpoint and credentials of
        ``catalog_properties`` when given there (:data:`S3_CLIENT_VARIABLES`)."""
        props = self.catalog_properties
        given = {name: props.get(key) for name, key in S3_CLIENT_VARIABLES.items()}
        checksums = dict.fromkeys(S3_CHECKSUM_VARIABLES, self.s3_checksum_mode)
        return {**checksums, **{name: value for name, value in given.items() if value}}

    def kafka_client_config(self) -> dict[str, str]:
        """Base librdkafka configuration shared by producers, consumers and admin clients."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_security}


def export_s3_environment(settings: Settings) -> None:
    """Put :meth:`Settings.s3_environment` into this process's environment, where the AWS SDKs
    read it when they create a client (the one place the project writes ``os.environ``)."""
    os.environ.update(settings.s3_environment())


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
