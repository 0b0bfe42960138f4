"""A stand-in for Stripe's Events API, for the reconciliation tests. It is not Stripe.

It serves ``GET /v1/events`` in the shape of Stripe's list API — ``object: list``, ``data``,
``has_more``, ``url`` — newest first, over events the tests give it (the simulator's), with the
parameters reconciliation uses: ``limit`` (at most 100), ``starting_after``, ``created[gte|gt|lt|
lte]``, ``types[n]`` and ``delivery_success`` (events marked undelivered are those whose webhook
never arrived). It answers 401 to a wrong key, 400 to a parameter Stripe's Events API does not
take, and 429 on demand (``rate_limit``). Every request's query is recorded (``requests``).

Stripe's own ``stripe-mock`` checks that the requests are valid Events API requests
(``tests/ingest/test_stripe_mock.py``); this stand-in is what serves chosen events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.server import serve

API_KEY = "sk_test_standin_key_0123456789"
_CREATED = re.compile(r"^created\[(gte|gt|lt|lte)\]$")
_TYPES = re.compile(r"^types\[\d+\]$")
_PLAIN = {"limit", "starting_after", "delivery_success"}


@dataclass
class StripeStandIn:
    """Events to serve, which of them were never delivered, and what happened to each request."""

    events: list[dict]
    undelivered: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    _limited: list[float | None] = field(default_factory=list)  # 429s to answer next
    _limit_after: int = 0  # requests answered normally before those 429s

    def rate_limit(self, times: int, *, after: int = 0, retry_after_s: float | None = None) -> None:
        """Answer 429 to ``times`` requests, once ``after`` more requests were answered."""
        self._limited = [retry_after_s] * times
        self._limit_after = after

    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/v1/events", self._list, methods=["GET"])
        return app

    async def _list(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        self.requests.append(query)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided: sk_****")
        unknown = [k for k in query if not (k in _PLAIN or _CREATED.match(k) or _TYPES.match(k))]
        if unknown:
            return _error(400, "invalid_request_error", f"Received unknown parameter: {unknown[0]}")
        if self._limited and self._limit_after == 0:
            retry_after = self._limited.pop(0)
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return _error(429, "rate_limit_error", "Too many requests", headers)
        self._limit_after = max(self._limit_after - 1, 0)
        return JSONResponse(self._page(query))

    def _page(self, query: dict[str, str]) -> dict:
        chosen = list(self._matching(query))
        if "starting_after" in query:
            ids = [e["id"] for e in chosen]
            chosen = chosen[ids.index(query["starting_after"]) + 1 :]
        limit = min(int(query.get("limit", 10)), 100)
        return {
            "object": "list",
            "url": "/v1/events",
            "has_more": len(chosen) > limit,
            "data": chosen[:limit],
        }

    def _matching(self, query: dict[str, str]) -> Iterator[dict]:
        bounds = {m.group(1): int(v) for k, v in query.items() if (m := _CREATED.match(k))}
        types = {v for k, v in query.items() if _TYPES.match(k)}
        delivered = {"false": False, "true": True}.get(query.get("delivery_success", ""))
        newest_first = sorted(self.events, key=lambda e: (e["created"], e["id"]), reverse=True)
        for event in newest_first:
            if _within(event["created"], bounds) and (not types or event["type"] in types):
                if delivered is None or (event["id"] not in self.undelivered) == delivered:
                    yield event


def _within(created: int, bounds: dict[str, int]) -> bool:
    return (
        created >= bounds.get("gte", created)
        and created > bounds.get("gt", created - 1)
        and created < bounds.get("lt", created + 1)
        and created <= bounds.get("lte", created)
    )


def _error(status: int, kind: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers)


@contextmanager
def serving(
    events: Iterable[dict], undelivered: Iterable[str] = ()
) -> Iterator[tuple[str, StripeStandIn]]:
    """Serve a stand-in over ``events``; yield its base URL (the API base) and the stand-in."""
    standin = StripeStandIn(list(events), set(undelivered))
    with serve(standin.app()) as url:
        yield url, standin
