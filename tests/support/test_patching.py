"""The crash harness and the pipeline benchmark's breakdown wrap a function wherever a caller
bound it, whether the caller imported it at its top or looks it up at call time."""

from __future__ import annotations

import sys
import types

import pytest

from tests.support.patching import wrap_everywhere


def test_a_wrapped_function_is_replaced_in_the_modules_that_imported_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = types.ModuleType("lakehouse_test_owner")
    owner.append = lambda: "real"
    top_importer = types.ModuleType("lakehouse_test_top_importer")
    top_importer.append = owner.append  # as `from lakehouse_test_owner import append`
    unrelated = types.ModuleType("lakehouse_test_unrelated")
    unrelated.append = lambda: "other"
    for module in (owner, top_importer, unrelated):
        monkeypatch.setitem(sys.modules, module.__name__, module)

    wrap_everywhere(owner, "append", lambda fn: lambda: f"wrapped {fn()}")

    assert owner.append() == top_importer.append() == "wrapped real"
    assert unrelated.append() == "other"


def test_a_method_is_wrapped_on_its_class() -> None:
    class Reader:
        def poll(self) -> str:
            return "batch"

    wrap_everywhere(Reader, "poll", lambda fn: lambda self: f"wrapped {fn(self)}")
    assert Reader().poll() == "wrapped batch"
