"""The provider's side of reconciliation: Stripe's Events API, listed with the official library.

Read only: the one request made is ``GET /v1/events`` (``client.v1.events.list``), for a window of
event creation (``created[gte]``, ``created[lt]``), optionally only the event types the webhook
endpoint subscribes to (``types``) and only events whose webhook delivery failed
(``delivery_success=false``). Pages of 100 are followed with the library's auto-pagination
(``has_more`` / ``starting_after``).

Failures, each ending the listing with ``EventsNotListed`` (no partial list is ever returned):

- network errors, 409 and 5xx: retried by the library (``max_network_retries``, its own
  exponential backoff);
- 429 (rate limited): the library does not retry it (Stripe's libraries leave rate limits to the
  caller), so ``list_events`` waits (exponential backoff, or ``Retry-After`` when longer) and
  resumes after the last event it received, up to ``rate_limit_retries`` times in a row;
- anything else (bad key, bad request): at once.

Stripe keeps events for 30 days (``EVENTS_RETENTION``): a window reaching further back cannot be
listed completely and is refused before any request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import stripe

from settings import Settings

log = logging.getLogger("ingest.stripe_events")

#: How far back Stripe's Events API lists events.
EVENTS_RETENTION = timedelta(days=30)
#: Events per page (Stripe's maximum).
PAGE_LIMIT = 100
#: Longest wait between two attempts after a 429, whatever the backoff or Retry-After say.
MAX_WAIT_S = 60.0

#: The listed events: one row per event, its body as the API returned it (JSON).
EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("body", pa.binary(), nullable=False),
    ]
)


class EventsNotListed(RuntimeError):
    """The Events API could not be listed completely for the window; nothing was returned."""


@dataclass(frozen=True)
class RateLimitPolicy:
    """How a 429 is waited out: ``retries`` in a row at most, the n-th after
    ``backoff_s * 2**(n-1)`` seconds (capped at 32 times ``backoff_s``), or ``Retry-After``."""

    retries: int = 8
    backoff_s: float = 1.0

    def wait_s(self, failures: int, retry_after_s: float | None) -> float:
        backoff = self.backoff_s * 2 ** min(failures - 1, 5)
        return min(max(backoff, retry_after_s or 0.0), MAX_WAIT_S)


def events_client(settings: Settings) -> stripe.StripeClient:
    """A Stripe client for the Events API from settings (key, API base, network retries)."""
    if settings.stripe_api_key is None:
        raise ValueError(
            "LAKEHOUSE_STRIPE_API_KEY is not set: reconciliation needs a Stripe key that may "
            "read events (a restricted key with read access to Events is enough)"
        )
    bases = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses=bases,
        max_network_retries=settings.stripe_max_network_retries,
    )


def list_params(
    since: datetime, until: datetime, *, failed_only: bool, types: Sequence[str] = ()
) -> dict[str, Any]:
    """The Events API list parameters of a window (``since`` included, ``until`` excluded).

    ``created`` is whole seconds: ``created[gte]`` rounds ``since`` down and ``created[lt]``
    rounds ``until`` up, so the listing covers the window; ``list_events`` drops what falls
    outside it."""
    params: dict[str, Any] = {
        "limit": PAGE_LIMIT,
        "created": {"gte": int(since.timestamp()), "lt": _ceil_seconds(until)},
    }
    if failed_only:
        params["delivery_success"] = False
    if types:
        params["types"] = list(types)
    return params


def list_events(
    client: stripe.StripeClient,
    since: datetime,
    until: datetime,
    *,
    failed_only: bool = False,
    types: Sequence[str] = (),
    rate_limit: RateLimitPolicy | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pa.Table:
    """Every event the provider created in ``[since, until)`` (see the module docstring), as
    ``EVENTS`` rows, newest first; raises ``EventsNotListed`` unless the listing completed."""
    now = now or datetime.now(UTC)
    if since < now - EVENTS_RETENTION:
        raise ValueError(
            f"the window starts at {since:%Y-%m-%d %H:%M} UTC, more than "
            f"{EVENTS_RETENTION.days} days ago: Stripe's Events API cannot list it completely"
        )
    params = list_params(since, until, failed_only=failed_only, types=types)
    rows = _Rows(since, until)
    policy, failures = rate_limit or RateLimitPolicy(), 0
    while True:
        resume = {"starting_after": rows.last_id} if rows.last_id else {}
        try:
            for event in client.v1.events.list({**params, **resume}).auto_paging_iter():
                rows.add(event)
                failures = 0  # progress: the next 429 starts a fresh backoff
            return rows.table()
        except stripe.RateLimitError as exc:
            failures += 1
            if failures > policy.retries:
                gave_up = f"still rate limited after {policy.retries} retries"
                raise EventsNotListed(_describe(exc, gave_up)) from exc
            wait = policy.wait_s(failures, _retry_after_s(exc))
            log.warning("Events API rate limited; retrying", extra={"fields": {"wait_s": wait}})
            sleep(wait)
        except stripe.StripeError as exc:
            raise EventsNotListed(_describe(exc, "the Events API could not be listed")) from exc


class _Rows:
    """Events collected across pages and resumed listings, each once, within the window."""

    def __init__(self, since: datetime, until: datetime) -> None:
        self._since, self._until = since, until
        self._seen: set[str] = set()
        self._columns: dict[str, list] = {name: [] for name in EVENTS.names}
        self.last_id: str | None = None

    def add(self, event: stripe.Event) -> None:
        self.last_id = event.id
        created_at = datetime.fromtimestamp(event.created, UTC)
        if event.id in self._seen or not self._since <= created_at < self._until:
            return
        self._seen.add(event.id)
        for name, value in zip(
            EVENTS.names,
            (event.id, event.type, created_at, orjson.dumps(event.to_dict(for_json=True))),
            strict=True,
        ):
            self._columns[name].append(value)

    def table(self) -> pa.Table:
        return pa.table(self._columns, schema=EVENTS)


def _ceil_seconds(moment: datetime) -> int:
    whole = int(moment.timestamp())
    return whole if whole == moment.timestamp() else whole + 1


def _retry_after_s(exc: stripe.StripeError) -> float | None:
    """The 429's ``Retry-After`` in seconds, when it sent one."""
    value = next((v for k, v in (exc.headers or {}).items() if k.lower() == "retry-after"), "")
    try:
        return float(value)
    except ValueError:
        return None


def _describe(exc: stripe.StripeError, what: str) -> str:
    """What went wrong, for an operator, on one line: the error class, HTTP status, Stripe's
    error code and message. A refused key is described without the answer's text (it is about
    the key), so no part of a key reaches a log."""
    status = f"HTTP {exc.http_status}" if exc.http_status else "no HTTP answer"
    code = f", code {exc.code}" if exc.code else ""
    about_key = isinstance(exc, stripe.AuthenticationError | stripe.PermissionError)
    text = "the key was refused" if about_key else str(exc.user_message or "")
    detail = " ".join(text.split())[:300]
    return f"{what} ({type(exc).__name__}, {status}{code}): {detail}"
