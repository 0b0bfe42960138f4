"""Each table is defined once (``transforms.schemas``); its Iceberg spec, Polars schema and Pandera
contract are derived from that definition and agree on names, order, types and nullability."""

from __future__ import annotations

import polars as pl
import pytest

from quality.contracts import CONTRACTS
from tests.support.tables import plain_type
from transforms.schemas import ALL_TABLES, TableSchema
from warehouse import tables

by_name = pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.identifier_str)


def test_every_table_has_one_spec_and_one_contract() -> None:
    names = [t.identifier_str for t in ALL_TABLES]
    assert [spec.identifier_str for spec in tables.ALL_TABLES] == names
    assert list(CONTRACTS) == names


@by_name
def test_the_iceberg_spec_is_built_from_the_definition(table: TableSchema) -> None:
    (spec,) = (s for s in tables.ALL_TABLES if s.identifier_str == table.identifier_str)
    assert spec.schema is table
    docs = [(f.metadata or {}).get(b"doc", b"").decode() for f in spec.arrow_schema]
    assert docs == [c.doc for c in table.columns] and all(docs)


@by_name
def test_arrow_polars_and_pandera_agree_on_names_order_types_and_nullability(
    table: TableSchema,
) -> None:
    arrow = table.arrow
    contract = CONTRACTS[table.identifier_str]

    assert arrow.names == table.polars.names() == list(contract.columns)
    # the Polars schema is what Polars reads from the table's Arrow data
    assert list(pl.from_arrow(arrow.empty_table()).schema.items()) == list(table.polars.items())
    assert [c.dtype.type for c in contract.columns.values()] == list(table.polars.values())
    assert [c.nullable for c in contract.columns.values()] == [f.nullable for f in arrow]
    assert contract.strict and contract.ordered


@by_name
def test_polars_frames_cast_losslessly_to_the_table_schema(table: TableSchema) -> None:
    arrow = pl.DataFrame(schema=table.polars).to_arrow()
    for ours, theirs in zip(arrow.schema, table.arrow, strict=True):
        assert plain_type(ours.type) == theirs.type, ours.name
    assert arrow.cast(table.arrow).schema.names == table.column_names
