"""Readiness: is the broker reachable? A cached metadata request, made off the event loop.

The answer names the dependency and says what is wrong in our words; the client library's own
error text (addresses, internal state) goes to the log only.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ingest.producer import AsyncProducer, ProduceError

log = logging.getLogger("ingest.health")

BROKER = "broker"
BROKER_DOWN = "the Kafka-API broker does not answer"


class BrokerProbe:
    """Answers from a cached check at most ``max_age_s`` old; one check runs at a time.

    A verdict is therefore at most ``max_age_s + timeout_s`` stale (2 s by default).
    """

    def __init__(
        self, producer: AsyncProducer, max_age_s: float = 1.0, timeout_s: float = 1.0
    ) -> None:
        self._producer = producer
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._checked_at: float | None = None
        self._problem: str | None = None
        self._lock = asyncio.Lock()

    dependency = BROKER

    async def problem(self) -> str | None:
        """None while the broker answers, else a short public reason."""
        if self._fresh():
            return self._problem
        async with self._lock:
            if not self._fresh():  # another request may have refreshed it meanwhile
                self._problem = await asyncio.to_thread(self._check)
                self._checked_at = time.monotonic()
        return self._problem

    def _fresh(self) -> bool:
        checked_at = self._checked_at
        return checked_at is not None and time.monotonic() - checked_at < self._max_age_s

    def _check(self) -> str | None:
        try:
            self._producer.check_broker(self._timeout_s)
        except ProduceError as exc:
            if self._problem is None:  # log the change, with the library's words, once
                log.warning("broker not reachable", extra={"fields": {"error": str(exc)}})
            return BROKER_DOWN
        return None
