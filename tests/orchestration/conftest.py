"""The orchestration tests share the session's Prefect server (``tests/conftest.py``,
``prefect_server``); ``LocalPrefect`` is what it yields."""

from tests.support.prefect import LocalPrefect

__all__ = ["LocalPrefect"]
