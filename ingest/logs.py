"""Structured JSON logs (one object a line) carrying the request id.

Only metadata is logged: outcome, status, event id and type, topic, durations. Bodies, signature
headers and secrets never reach a log record.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

#: The id of the request being handled (set by ``RequestContextMiddleware``).
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


#: Fresh ids: a random per-process prefix and a counter (unique, cheaper than a uuid4 each).
_PREFIX = uuid.uuid4().hex[:16]
_COUNTER = itertools.count(1)


def request_id_from(incoming: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is short and plain, else a fresh one (32 hex)."""
    if incoming and _SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return f"{_PREFIX}{next(_COUNTER):016x}"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", **fields}`` as one JSON line.

    Structured values go in ``extra={"fields": {...}}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = record.__dict__.get("fields")
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` (uvicorn ``log_config``) sending every logger through JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
