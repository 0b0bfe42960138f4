"""Stages without a broker: bronze rows landed directly, tables read back, settings changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl
import pytest

from flows.context import Lakehouse
from settings import get_settings
from tests.support.bronze import bronze_frame
from warehouse.io import scan
from warehouse.tables import BRONZE_WEBHOOK_EVENTS, TableSpec


def land(lh: Lakehouse, bodies: Iterable[dict], *, received_at: datetime) -> pl.DataFrame:
    """Append ``bodies`` to bronze as the loader would, all received at ``received_at``; the
    rows."""
    rows = bronze_frame(bodies, received_at=lambda _: received_at)
    lh.append(BRONZE_WEBHOOK_EVENTS, rows.to_arrow(), summary={})
    return rows


def rows_of(lh: Lakehouse, spec: TableSpec) -> pl.DataFrame:
    """Every row of the table, as committed now."""
    lh.refresh()
    return pl.from_arrow(scan(lh.table(spec)))


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Set ``LAKEHOUSE_<NAME>`` for each value and read the settings again."""
    for name, value in values.items():
        monkeypatch.setenv(f"LAKEHOUSE_{name.upper()}", value)
    get_settings.cache_clear()
