"""Signed webhook deliveries over HTTP, as Stripe makes them: one ``send_one``, or many with
``send_payloads`` at a target rate under a concurrency limit (httpx, asyncio).

Each body is signed when it is sent, so long runs never trip the receiver's timestamp tolerance.
Responses are counted by status code; transport failures by ``error:<exception>``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from simulator.signing import signed_headers

#: Called with the outcome of each delivery (``"200"``, ``"400"``, ``"error:ConnectError"``).
OnResponse = Callable[[str], None]


@dataclass
class SendSummary:
    """Outcomes of a run of deliveries: count by status, latencies, time taken."""

    by_status: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.by_status.values())

    @property
    def accepted(self) -> int:
        """Deliveries answered 2xx."""
        return sum(n for status, n in self.by_status.items() if status.startswith("2"))

    @property
    def rate(self) -> float:
        """Deliveries per second over the whole run."""
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def latency_ms(self, quantile: float) -> float:
        """Latency of answered deliveries at ``quantile`` (0.5, 0.99), milliseconds."""
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def send_one(
    body: bytes,
    url: str,
    secret: str,
    *,
    invalid_signature: bool = False,
    timeout_s: float = 10.0,
) -> httpx.Response:
    """POST one signed delivery and return the response (raises ``httpx.HTTPError`` when the
    receiver cannot be reached)."""
    headers = signed_headers(body, secret, invalid=invalid_signature)
    return httpx.post(url, content=body, headers=headers, timeout=timeout_s)


async def send_payloads(
    bodies: Iterable[bytes],
    url: str,
    secret: str,
    *,
    rate: float | None = None,
    concurrency: int = 32,
    invalid_signature: bool = False,
    timeout_s: float = 10.0,
    on_response: OnResponse | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SendSummary:
    """Deliver every body, starting the i-th no earlier than ``i / rate`` seconds after the first
    (``rate`` None or 0: as fast as ``concurrency`` requests in flight allow). ``transport``
    replaces the network (tests, ``httpx.ASGITransport``)."""
    summary, slots, tasks = SendSummary(), asyncio.Semaphore(concurrency), set()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()
    client = httpx.AsyncClient(limits=limits, timeout=timeout_s, transport=transport)
    async with client:
        for i, body in enumerate(bodies):
            if rate:
                delay = started + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await slots.acquire()
            task = asyncio.create_task(
                _deliver(client, url, body, secret, invalid_signature, summary, on_response)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        if tasks:
            await asyncio.gather(*tasks)
    summary.elapsed_s = loop.time() - started
    return summary


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str,
    invalid_signature: bool,
    summary: SendSummary,
    on_response: OnResponse | None,
) -> None:
    headers = signed_headers(body, secret, invalid=invalid_signature)
    began = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        outcome = f"error:{type(exc).__name__}"
    else:
        summary.latencies_s.append(time.perf_counter() - began)
        outcome = str(response.status_code)
    summary.by_status[outcome] += 1
    if on_response is not None:
        on_response(outcome)
