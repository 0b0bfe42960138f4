"""Wrap a function wherever it is bound, for crash points and time breakdowns.

``from warehouse.io import append`` binds ``append`` in the importing module too, so replacing
``warehouse.io.append`` alone misses callers that imported it at their top. ``wrap_everywhere``
also replaces those module-level bindings, whatever the callers' import style.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def wrap_everywhere(owner: Any, name: str, wrap: Callable[[Callable], Callable]) -> Callable:
    """Replace ``owner.<name>`` with ``wrap(original)`` in ``owner`` and in every loaded module
    that bound the same function under that name; return the replacement."""
    original = getattr(owner, name)
    replacement = wrap(original)
    setattr(owner, name, replacement)
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", {})
        if namespace.get(name) is original:  # the module's own binding, no lazy __getattr__
            setattr(module, name, replacement)
    return replacement
