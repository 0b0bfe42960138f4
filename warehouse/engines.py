"""Other engines on the same tables: the Spark and Trino catalog configuration that reads the
lakehouse's Iceberg catalog in PostgreSQL (Iceberg's JDBC catalog) and its warehouse on S3.

pyiceberg's SQL catalog keeps its tables in the layout of Apache Iceberg's ``JdbcCatalog``
(``iceberg_tables``, ``iceberg_namespace_properties``, rows keyed by the catalog name), so an
engine configured with the same catalog name, database and warehouse sees every table the
pipeline writes. The README shows the output for the docker-compose settings;
``tests/production`` runs Spark with it.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from settings import Settings


def jdbc_catalog(settings: Settings) -> dict[str, str]:
    """The JDBC URL, user and password of a PostgreSQL catalog URI (SQLAlchemy form)."""
    url = make_url(settings.resolved_catalog_uri)
    if not url.drivername.startswith("postgresql"):
        raise ValueError("other engines read the catalog in PostgreSQL (LAKEHOUSE_CATALOG_URI)")
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    return {
        "uri": f"jdbc:postgresql://{host}/{url.database}",
        "user": url.username or "",
        "password": url.password or "",
    }


def _s3(settings: Settings) -> dict[str, str]:
    """Iceberg's S3FileIO properties (the same names as pyiceberg's ``s3.*``)."""
    keys = ("s3.endpoint", "s3.access-key-id", "s3.secret-access-key", "s3.path-style-access")
    props = {
        key: settings.catalog_properties[key] for key in keys if key in settings.catalog_properties
    }
    region = settings.catalog_properties.get("s3.region")
    return {**props, **({"client.region": region} if region else {})}


def spark_catalog_conf(settings: Settings) -> dict[str, str]:
    """``spark.sql.catalog.<name>.*`` settings of an Iceberg ``SparkCatalog`` on the lakehouse
    (the iceberg-spark-runtime, iceberg-aws-bundle and PostgreSQL JDBC jars on the classpath)."""
    name, jdbc = settings.catalog_name, jdbc_catalog(settings)
    prefix = f"spark.sql.catalog.{name}"
    conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": jdbc["uri"],
        f"{prefix}.jdbc.user": jdbc["user"],
        f"{prefix}.jdbc.password": jdbc["password"],
        f"{prefix}.warehouse": settings.resolved_warehouse,
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
    }
    return conf | {f"{prefix}.{key}": value for key, value in _s3(settings).items()}


def trino_catalog_properties(settings: Settings) -> dict[str, str]:
    """``etc/catalog/<name>.properties`` of Trino's Iceberg connector with its JDBC catalog."""
    jdbc = jdbc_catalog(settings)
    s3 = _s3(settings)
    props = {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.catalog-name": settings.catalog_name,
        "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
        "iceberg.jdbc-catalog.connection-url": jdbc["uri"],
        "iceberg.jdbc-catalog.connection-user": jdbc["user"],
        "iceberg.jdbc-catalog.connection-password": jdbc["password"],
        "iceberg.jdbc-catalog.default-warehouse-dir": settings.resolved_warehouse,
        "fs.native-s3.enabled": "true",
        "s3.endpoint": s3.get("s3.endpoint", ""),
        "s3.region": s3.get("client.region", ""),
        "s3.path-style-access": s3.get("s3.path-style-access", "false"),
        "s3.aws-access-key": s3.get("s3.access-key-id", ""),
        "s3.aws-secret-key": s3.get("s3.secret-access-key", ""),
    }
    return {key: value for key, value in props.items() if value}
