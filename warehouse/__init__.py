"""The warehouse: Iceberg tables (specs in ``warehouse.tables``), their catalog, writers,
maintenance, and DuckDB access for analysts::

    import warehouse
    warehouse.sql("SELECT currency, SUM(amount) FROM silver.payment_events GROUP BY 1")
    con = warehouse.connect()  # every table as a view named namespace.table

``connect`` and ``sql`` are imported lazily, so ``import warehouse.tables`` stays light (0.01 s;
``warehouse.duck`` with DuckDB and pyiceberg takes 1.1 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warehouse.duck import connect, sql

__all__ = ["connect", "sql"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from warehouse import duck

        return getattr(duck, name)
    raise AttributeError(f"module 'warehouse' has no attribute {name!r}")
