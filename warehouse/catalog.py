"""The Iceberg catalog, from settings and nothing else, and the tables in it, from their specs.

Default: a SQL catalog in SQLite under ``LAKEHOUSE_HOME`` with a file warehouse beside it. The
SQLite file runs in WAL mode with a busy timeout, so the loader, the flows and analysts can commit
and read at the same time. ``LAKEHOUSE_CATALOG_URI=postgresql+psycopg://…`` keeps the SQL catalog
in PostgreSQL: pyiceberg's SQL catalog has the table layout of Apache Iceberg's JDBC catalog, so
Spark, Trino and Flink read the same tables through theirs. ``http(s)://…`` selects a REST catalog.
``LAKEHOUSE_CATALOG_PROPERTIES`` adds pyiceberg properties (``s3.endpoint``, ``s3.access-key-id``,
…) to either; with the warehouse on S3, the AWS SDK under pyarrow gets the checksum mode that
S3-compatible stores need (``Settings.s3_environment``). ``ensure_table`` creates a table from its
spec on first use (schema with column docs, partition spec, sort order, identifier fields) and
later adds columns (in their place) and migrates a decimal column to a new scale
(``warehouse.migrate``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform
from sqlalchemy.exc import DBAPIError, IntegrityError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from settings import Settings, export_s3_environment, get_settings
from warehouse.migrate import rescale
from warehouse.tables import ALL_TABLES, TableSpec

ArrayLike = pa.Array | pa.ChunkedArray

#: Seconds a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30
#: Attempts at opening the SQL catalog while other processes create it (``_sql_catalog``).
OPEN_ATTEMPTS = 5


def get_catalog(settings: Settings | None = None) -> Catalog:
    """The lakehouse catalog: REST when ``catalog_uri`` is http(s), else SQL (SQLite by default)."""
    settings = settings or get_settings()
    uri = settings.resolved_catalog_uri
    if not settings.resolved_warehouse.startswith("file:"):
        export_s3_environment(settings)  # before pyarrow creates its first S3 client
    if uri.startswith(("http://", "https://")):
        return _rest_catalog(settings, uri)
    return _sql_catalog(settings, uri)


def _rest_catalog(settings: Settings, uri: str) -> Catalog:
    props = {"type": "rest", "uri": uri, **settings.catalog_properties}
    if settings.warehouse:
        props.setdefault("warehouse", settings.warehouse)
    return load_catalog(settings.catalog_name, **props)


def _sql_catalog(settings: Settings, uri: str) -> Catalog:
    warehouse = settings.resolved_warehouse
    if warehouse.startswith("file://"):
        Path(warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    props = {
        "type": "sql",
        "warehouse": warehouse,
        "init_catalog_tables": "true",
        **settings.catalog_properties,
    }
    # processes opening a fresh catalog at once (loaders starting together) race to create its
    # tables and, on SQLite, to switch it to WAL: the losers see "already exists" or "database
    # is locked", and the next attempt finds the database ready
    for attempt in Retrying(
        retry=retry_if_exception_type((sqlite3.OperationalError, DBAPIError)),
        stop=stop_after_attempt(OPEN_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.05, max=1),
        reraise=True,
    ):
        with attempt:
            ready = _prepare_sqlite(uri) if uri.startswith("sqlite:///") else uri
            return load_catalog(settings.catalog_name, **props, uri=ready)
    raise AssertionError("unreachable")  # pragma: no cover


def _prepare_sqlite(uri: str) -> str:
    """Create the database folder, switch the file to WAL (persistent) and add a busy timeout."""
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as db:
        db.execute("PRAGMA journal_mode=WAL")
    db.close()
    if "timeout=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}timeout={SQLITE_BUSY_TIMEOUT_S}"


#: Properties every lakehouse table gets (a spec's own properties win). Manifest merging keeps
#: the manifest count of micro-batch tables bounded; old metadata files are pruned. pyiceberg's
#: own commit retry is off: after a lost race it re-applies the same rows and summary on the new
#: base (``Transaction._rebuild_snapshot_updates``), where bronze's offsets and a stage's
#: watermark must be worked out again (``warehouse.io.append_planned`` retries that way).
TABLE_DEFAULTS = {
    "write.parquet.compression-codec": "zstd",
    "commit.manifest-merge.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "500",
    "commit.retry.num-retries": "0",
}
#: Defaults set on a table created before they were (tables made by an older version).
_REQUIRED_DEFAULTS = ("commit.retry.num-retries",)
_TRANSFORMS = {"day": DayTransform, "identity": IdentityTransform}


def ensure_tables(catalog: Catalog) -> dict[str, Table]:
    """Every lakehouse table, created or evolved as needed, by ``namespace.name``."""
    return {spec.identifier_str: ensure_table(catalog, spec) for spec in ALL_TABLES}


def ensure_table(catalog: Catalog, spec: TableSpec) -> Table:
    """Load the spec's table, creating it (and its namespace) on first use; add missing columns
    and finish any decimal rescale (both idempotent)."""
    _ensure_namespace(catalog, spec.namespace)
    try:
        table = catalog.load_table(spec.identifier_str)
    except NoSuchTableError:
        try:
            return _create_table(catalog, spec)
        except (TableAlreadyExistsError, CommitFailedException):  # another process won the race
            table = catalog.load_table(spec.identifier_str)  # (the SQL catalog says it either way)
    table = _add_missing_columns(_set_required_defaults(table), spec)
    rescale(table, spec.columns, spec.recompute)
    return table


def _ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create ``namespace`` unless it exists. The SQL catalog checks, then inserts: a process
    that loses that race to another (two loaders starting at once) gets the database's unique
    constraint error rather than ``NamespaceAlreadyExistsError``; the namespace is there then."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except IntegrityError:
        if not catalog.namespace_exists(namespace):
            raise


def _create_table(catalog: Catalog, spec: TableSpec) -> Table:
    props = {**TABLE_DEFAULTS, "comment": spec.grain, **spec.properties}
    tx = catalog.create_table_transaction(spec.identifier_str, spec.arrow_schema, properties=props)
    with tx.update_spec() as update:
        for column, transform in spec.partition_by:
            update.add_field(column, _TRANSFORMS[transform](), f"{column}_{transform}")
    with tx.update_sort_order() as order:
        for column in spec.sort_by:
            order.asc(column, IdentityTransform())
    nullable = {name for name, _, is_nullable, _ in spec.columns if is_nullable}
    if spec.identifier and not nullable & set(spec.identifier):  # identifiers must be required
        with tx.update_schema() as update_schema:
            update_schema.set_identifier_fields(*spec.identifier)
    tx.commit_transaction()
    return catalog.load_table(spec.identifier_str)  # not the staged table the commit returns


def _set_required_defaults(table: Table) -> Table:
    """Set the defaults correctness depends on where the table lacks them (once)."""
    missing = {k: TABLE_DEFAULTS[k] for k in _REQUIRED_DEFAULTS if k not in table.properties}
    if missing:
        with table.transaction() as tx:
            tx.set_properties(missing)
    return table


def _add_missing_columns(table: Table, spec: TableSpec) -> Table:
    """Additive schema evolution: new spec columns are added as optional, each after the column
    it follows in the spec (so old and new tables list columns alike); nothing is dropped."""
    existing = set(table.schema().column_names)
    missing = [f.with_nullable(True) for f in spec.arrow_schema if f.name not in existing]
    if missing:
        names = spec.column_names
        with table.update_schema() as update:
            update.union_by_name(pa.schema(missing))
        with table.update_schema() as update:
            for f in missing:
                position = names.index(f.name)
                if position:
                    update.move_after(f.name, names[position - 1])
                else:
                    update.move_first(f.name)
    return table
