"""Routing of event types to topics (named in ``settings.names``) and topic creation.

A message's value is the request body exactly as received; its key is the merchant (Stripe
``account``, else ``data.object.metadata.merchant_id``), else the event id, so one merchant's events
stay ordered in one partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from settings.names import (  # noqa: F401 - the topic and header names, re-exported
    ALL_TOPICS,
    CHARGE,
    DISPUTE,
    DLQ,
    EVENT_TOPICS,
    H_DLQ_REASON,
    H_EVENT_ID,
    H_EVENT_TYPE,
    H_PROVIDER,
    H_RECEIVED_AT,
    H_REQUEST_ID,
    H_SOURCE,
    OTHER,
    PAYMENT_INTENT,
    REFUND,
)

_REFUND_TYPES = frozenset({"charge.refunded", "charge.refund.updated"})

#: On a cluster of this many brokers or more, topics get three replicas and refuse a write that
#: fewer than two of them hold (with acks=all, an acknowledged event survives losing a broker).
REPLICATED_CLUSTER_BROKERS = 3


def route(event_type: str) -> str:
    """The topic of a verified Stripe event type."""
    if event_type.startswith("payment_intent."):
        return PAYMENT_INTENT
    if event_type.startswith("charge.dispute."):
        return DISPUTE
    if event_type.startswith("refund.") or event_type in _REFUND_TYPES:
        return REFUND
    if event_type.startswith("charge."):
        return CHARGE
    return OTHER


def message_key(event: dict) -> str:
    """Partition key: the merchant, else the event id."""
    account = event.get("account")
    if isinstance(account, str) and account:
        return account
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    merchant = metadata.get("merchant_id") if isinstance(metadata, dict) else None
    if isinstance(merchant, str) and merchant:
        return merchant
    return str(event.get("id", ""))


def ensure_topics(
    client_config: dict[str, str],
    partitions: int,
    topics: Iterable[str] = ALL_TOPICS,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AdminClient(client_config)
    metadata = admin.list_topics(timeout=timeout_s)
    missing = [t for t in topics if t not in metadata.topics]
    if not missing:
        return []
    futures = admin.create_topics(
        new_topics(missing, partitions, len(metadata.brokers)), operation_timeout=timeout_s
    )
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:  # another process created it in between
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    _wait_for_leaders(admin, missing, timeout_s)
    return missing


def new_topics(names: Iterable[str], partitions: int, brokers: int) -> list[NewTopic]:
    """Topics to create on a cluster of ``brokers``: the broker's default replication on a small
    cluster; three replicas and ``min.insync.replicas=2`` from three brokers on."""
    if brokers >= REPLICATED_CLUSTER_BROKERS:
        replication, config = 3, {"min.insync.replicas": "2"}
    else:
        replication, config = -1, {}
    return [
        NewTopic(name, num_partitions=partitions, replication_factor=replication, config=config)
        for name in names
    ]


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Block until every partition of the new topics has a leader (writes and reads work)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=timeout_s)
        if all(
            t in meta.topics
            and meta.topics[t].partitions
            and all(p.leader >= 0 for p in meta.topics[t].partitions.values())
            for t in names
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics {names} have no partition leaders after {timeout_s:.0f} s")


def broker_probe(client_config: Mapping[str, str]) -> Callable[[], bool]:
    """A readiness check: whether the broker answers a metadata request (within 2 s) and lists
    itself. The admin client is made on the first check and kept for the next ones."""
    admin: list[AdminClient] = []

    def answers() -> bool:
        if not admin:
            admin.append(AdminClient({**client_config, "log_level": "0"}))
        try:
            return bool(admin[0].list_topics(timeout=2).brokers)
        except KafkaException:  # not up yet
            return False

    return answers
