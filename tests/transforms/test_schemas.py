"""The transforms' own column lists cannot drift from warehouse.tables."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from transforms import schemas
from warehouse.tables import ALL_TABLES, AMOUNT, TableSpec


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.identifier_str)
def test_columns_equal_the_table_spec(spec: TableSpec) -> None:
    assert schemas.BY_TABLE[spec.identifier_str].names() == spec.column_names


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.identifier_str)
def test_types_cast_losslessly_to_the_table_schema(spec: TableSpec) -> None:
    arrow = pl.DataFrame(schema=schemas.BY_TABLE[spec.identifier_str]).to_arrow()
    for ours, theirs in zip(arrow.schema, spec.arrow_schema, strict=True):
        if pa.types.is_large_string(ours.type) or pa.types.is_string_view(ours.type):
            assert pa.types.is_string(theirs.type), ours.name
        else:
            assert ours.type == theirs.type, ours.name
    assert arrow.cast(spec.arrow_schema).schema.names == spec.column_names


def test_amount_scale_matches_the_warehouse() -> None:
    assert (schemas.AMOUNT_PRECISION, schemas.AMOUNT_SCALE) == (AMOUNT.precision, AMOUNT.scale)
