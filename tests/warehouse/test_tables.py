"""Table specs add only layout to a table's columns, and only layout of columns it has."""

from __future__ import annotations

import pytest

from transforms.schemas import GOLD_MERCHANT_DAILY
from warehouse.tables import TableSpec


def test_a_spec_laying_out_a_column_the_table_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="provider_created_at"):
        TableSpec(GOLD_MERCHANT_DAILY, partition_by=(("provider_created_at", "day"),))


def test_specs_are_hashable_so_they_can_key_a_mapping() -> None:
    spec = TableSpec(GOLD_MERCHANT_DAILY, properties={"write.format.default": "parquet"})
    assert {spec: 1}[spec] == 1
