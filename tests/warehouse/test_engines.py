"""Spark's and Trino's catalog configuration is derived from the settings, and the README shows
exactly what it derives for the docker-compose settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import Settings
from warehouse.engines import jdbc_catalog, spark_catalog_conf, trino_catalog_properties

README = Path(__file__).resolve().parents[2] / "README.md"

#: deployments/docker-compose.yml's settings, secrets as the README's placeholders.
COMPOSE = Settings(
    catalog_uri="postgresql+psycopg://lakehouse:<CATALOG_DB_PASSWORD>@catalog-db:5432/catalog",
    warehouse="s3://lakehouse/warehouse",
    catalog_properties={
        "s3.endpoint": "http://minio:9000",
        "s3.region": "us-east-1",
        "s3.path-style-access": "true",
        "s3.access-key-id": "<MINIO_ROOT_USER>",
        "s3.secret-access-key": "<MINIO_ROOT_PASSWORD>",
    },
)


def readme_properties(first_key: str) -> dict[str, str]:
    """The ``properties`` code block of the README that starts with ``first_key``."""
    blocks = re.findall(r"```properties\n(.*?)```", README.read_text(), re.DOTALL)
    [block] = [b for b in blocks if b.startswith(first_key)]
    return dict(line.split("=", 1) for line in block.strip().splitlines())


def test_the_readme_shows_the_spark_configuration_the_code_derives() -> None:
    assert readme_properties("spark.sql.catalog.") == spark_catalog_conf(COMPOSE)


def test_the_readme_shows_the_trino_configuration_the_code_derives() -> None:
    assert readme_properties("connector.name") == trino_catalog_properties(COMPOSE)


def test_the_jdbc_catalog_is_read_from_the_sqlalchemy_uri() -> None:
    settings = Settings(catalog_uri="postgresql+psycopg://ana:pw@db.internal/lake")
    assert jdbc_catalog(settings) == {
        "uri": "jdbc:postgresql://db.internal:5432/lake",
        "user": "ana",
        "password": "pw",
    }


def test_other_engines_need_the_catalog_in_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        spark_catalog_conf(Settings())
