"""DuckDB over the lakehouse: every Iceberg table as a view named ``namespace.table``.

The views read Iceberg natively with DuckDB's iceberg extension (``iceberg_scan`` of the table's
metadata file). Extensions are loaded from their PyPI wheels, never ``INSTALL``ed. Views carry the
table grain and column docs as comments (``duckdb_columns()``). A connection sees the tables as of
``connect()``: connect again for fresher data (a connection that outlives 500 commits of a table
loses its metadata file, which the table prunes).

Time travel: ``snapshot_id`` pins the table that owns that snapshot to it and shows every other
table as it was when that snapshot was committed; ``as_of`` shows every table as of a moment.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from warehouse.catalog import get_catalog
from warehouse.tables import ALL_TABLES, TableSpec

_LOCAL_PREFIXES = ("file:", "/")


@cache
def extension_path(name: str) -> Path:
    """``<wheel duckdb_extension_<name>>/extensions/v<duckdb version>/<name>.duckdb_extension``."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the PyPI package duckdb-extension-{name} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: duckdb-extension-{name} must match duckdb")
    return path


def connect(
    catalog: Catalog | None = None,
    snapshot_id: int | None = None,
    as_of: datetime | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per lakehouse table (current snapshot unless told)."""
    if snapshot_id is not None and as_of is not None:
        raise ValueError("give a snapshot id or a timestamp, not both")
    if as_of is not None and as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    catalog = catalog or get_catalog()
    tables = dict(_catalog_tables(catalog))
    pins = _time_travel(tables, snapshot_id, as_of)
    remote = any(not t.metadata_location.startswith(_LOCAL_PREFIXES) for t in tables.values())
    con = _duckdb_with_extensions(("avro", "iceberg", *(("httpfs",) if remote else ())))
    if remote and (secret := s3_secret_sql(catalog.properties)):
        con.execute(secret)
    specs = {spec.identifier_str: spec for spec in ALL_TABLES}
    for schema in sorted({name.split(".")[0] for name in [*tables, *specs]}):
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for name, table in tables.items():
        _table_view(con, name, table, pins.get(name, _CURRENT))
    for name, spec in specs.items():
        if name not in tables:
            _spec_view(con, spec)
    return con


def sql(query: str, **connect_kwargs: Any) -> pa.Table:
    """Run one query against a fresh ``connect(**connect_kwargs)``; the result as Arrow."""
    con = connect(**connect_kwargs)
    try:
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


def _catalog_tables(catalog: Catalog) -> Iterator[tuple[str, Table]]:
    for namespace in catalog.list_namespaces():
        if len(namespace) != 1:
            continue
        for identifier in catalog.list_tables(namespace):
            try:
                yield ".".join(identifier), catalog.load_table(identifier)
            except NoSuchTableError:  # dropped meanwhile
                continue


_CURRENT = -1  # pin meaning "the current snapshot"


def _time_travel(
    tables: dict[str, Table], snapshot_id: int | None, as_of: datetime | None
) -> dict[str, int | None]:
    """Per table the snapshot to read (None: the table was empty then)."""
    if snapshot_id is None and as_of is None:
        return {}
    pins: dict[str, int | None] = {}
    if snapshot_id is not None:
        owner = next((n for n, t in tables.items() if t.snapshot_by_id(snapshot_id)), None)
        if owner is None:
            raise ValueError(f"no table has snapshot {snapshot_id}")
        snapshot = tables[owner].snapshot_by_id(snapshot_id)
        assert snapshot is not None
        at_ms, pins[owner] = snapshot.timestamp_ms, snapshot_id
    else:
        assert as_of is not None
        at_ms = int(as_of.timestamp() * 1000)
    for name, table in tables.items():
        if name not in pins:
            snapshot = table.snapshot_as_of_timestamp(at_ms)
            pins[name] = snapshot.snapshot_id if snapshot else None
    return pins


def pinned_view(
    con: duckdb.DuckDBPyConnection, name: str, table: Table, snapshot_id: int | None
) -> None:
    """A view ``name`` of ``table`` as of ``snapshot_id`` (None: before its first snapshot,
    empty), beside the current ones (the audit reads a layer as its reader's watermark saw it)."""
    schema = name.split(".")[0] if "." in name else None
    if schema:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    _table_view(con, name, table, snapshot_id)


def _table_view(con: duckdb.DuckDBPyConnection, name: str, table: Table, pin: int | None) -> None:
    source = f"iceberg_scan({_literal(table.metadata_location)}"
    source += f", snapshot_from_id={pin})" if pin not in (None, _CURRENT) else ")"
    where = " WHERE false" if pin is None or table.current_snapshot() is None else ""
    con.execute(f"CREATE VIEW {_quoted(name)} AS SELECT * FROM {source}{where}")
    docs = {f.name: f.doc for f in table.schema().fields if f.doc}
    _comment(con, name, table.properties.get("comment"), docs)


def _spec_view(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """A typed, empty stand-in for a table that was never created."""
    con.register("_lakehouse_empty", spec.arrow_schema.empty_table())
    con.execute(f"CREATE TABLE {_quoted(spec.identifier_str)} AS SELECT * FROM _lakehouse_empty")
    con.unregister("_lakehouse_empty")
    _comment(con, spec.identifier_str, spec.grain, {c[0]: c[3] for c in spec.columns}, "TABLE")


def _comment(
    con: duckdb.DuckDBPyConnection,
    name: str,
    grain: str | None,
    docs: dict[str, str],
    kind: str = "VIEW",
) -> None:
    statements = [f"COMMENT ON {kind} {_quoted(name)} IS {_literal(grain)}"] if grain else []
    statements += [
        f'COMMENT ON COLUMN {_quoted(name)}."{column}" IS {_literal(doc)}'
        for column, doc in docs.items()
    ]
    if statements:
        con.execute(";\n".join(statements))


#: Extension files whose signature DuckDB has verified in this process.
_verified: set[Path] = set()


def _duckdb_with_extensions(names: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the extensions loaded (avro before iceberg), never INSTALLed.

    DuckDB checks an extension's signature on every LOAD (0.2-0.9 s for these 80 MB). The first
    connection of a process does; later ones load the same, already verified and mapped files
    without checking again.
    """
    paths = [extension_path(name) for name in names]
    config: dict[str, str | bool] = {"autoinstall_known_extensions": False}
    if _verified.issuperset(paths):
        config["allow_unsigned_extensions"] = True
    con = duckdb.connect(":memory:", config=config)
    for path in paths:
        con.execute(f"LOAD {_literal(str(path))}")
    _verified.update(paths)
    return con


def s3_secret_sql(props: dict[str, str]) -> str | None:
    """A DuckDB ``CREATE SECRET`` for S3 from pyiceberg ``s3.*`` catalog properties."""
    options = {
        "KEY_ID": props.get("s3.access-key-id"),
        "SECRET": props.get("s3.secret-access-key"),
        "SESSION_TOKEN": props.get("s3.session-token"),
        "REGION": props.get("s3.region") or props.get("client.region"),
    }
    endpoint = props.get("s3.endpoint")
    if endpoint:
        options["ENDPOINT"] = endpoint.split("://", 1)[-1].rstrip("/")
        options["USE_SSL"] = "true" if endpoint.startswith("https://") else "false"
    path_style = props.get("s3.path-style-access")
    if (path_style or "").lower() == "true" or (endpoint and path_style is None):
        options["URL_STYLE"] = "path"  # MinIO and most S3-compatible stores
    given = {k: v for k, v in options.items() if v}
    if not given:
        return None
    body = ", ".join(
        f"{k} {v}" if k == "USE_SSL" else f"{k} {_literal(v)}" for k, v in given.items()
    )
    return f"CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3, {body})"


def _quoted(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
