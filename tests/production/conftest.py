"""The production shape's servers, started once per session: PostgreSQL (Debian's server, a
throwaway cluster) and s3proxy (a real S3 API over a folder), on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lakehouse.localprod import ProductionShape, production_shape
from tests.conftest import JAR_CACHE


@pytest.fixture(scope="session")
def production_servers() -> Iterator[ProductionShape]:
    """PostgreSQL with the catalog, mlflow and prefect databases; S3 with the lakehouse and
    mlflow buckets. Tests must not assume them empty."""
    with production_shape(JAR_CACHE) as shape:
        yield shape
