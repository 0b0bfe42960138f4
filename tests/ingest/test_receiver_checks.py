"""The receiver's pure parts: content type and JSON depth checks, producer settings."""

from __future__ import annotations

import orjson
import pytest

from ingest.producer import producer_config
from ingest.webhooks import WebhookError, check_content_type, json_depth_exceeds


@pytest.mark.parametrize(
    "value",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_json_content_types_are_accepted(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    "value", [None, "", "text/plain", "application/jsonx", "application/json; charset=latin-1"]
)
def test_other_content_types_are_refused_with_415(value: str | None) -> None:
    with pytest.raises(WebhookError) as info:
        check_content_type(value)
    assert info.value.status == 415


def _nested(depth: int) -> bytes:
    """Objects and arrays alternating, ``depth`` levels deep (orjson refuses to write > 254)."""
    opening = "".join('{"k":' if i % 2 == 0 else "[" for i in range(depth))
    closing = "".join("}" if i % 2 == 0 else "]" for i in reversed(range(depth)))
    return f'{opening}"leaf"{closing}'.encode()


@pytest.mark.parametrize("depth", [1, 10, 64])
def test_json_at_or_below_the_limit_passes(depth: int) -> None:
    assert orjson.loads(_nested(depth))
    assert not json_depth_exceeds(_nested(depth), 64)


@pytest.mark.parametrize("depth", [65, 500])
def test_json_deeper_than_the_limit_is_detected(depth: int) -> None:
    assert json_depth_exceeds(_nested(depth), 64)


def test_brackets_inside_strings_do_not_count() -> None:
    body = orjson.dumps({"a": "[" * 100 + '\\"{' * 100, "b": [[["x"]]]})
    assert not json_depth_exceeds(body, 4)


def test_many_shallow_brackets_are_not_deep() -> None:
    body = orjson.dumps({"items": [{"a": [1]} for _ in range(200)]})  # 4 levels
    assert not json_depth_exceeds(body, 4)
    assert json_depth_exceeds(body, 3)


def test_the_producer_is_durable_idempotent_and_gives_up_at_the_request_deadline() -> None:
    config = producer_config({"bootstrap.servers": "broker:9092", "sasl.mechanism": "PLAIN"}, 2.5)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 2500
    assert config["linger.ms"] < config["message.timeout.ms"]
    assert config["sasl.mechanism"] == "PLAIN"  # the client settings are kept


def test_topics_on_a_cluster_of_three_brokers_need_two_in_sync_replicas() -> None:
    from ingest.topics import new_topics

    [replicated] = new_topics(["webhooks.stripe.charge"], 6, brokers=3)
    assert replicated.replication_factor == 3
    assert replicated.config == {"min.insync.replicas": "2"}
    [single] = new_topics(["webhooks.stripe.charge"], 3, brokers=1)
    assert single.replication_factor == -1 and not single.config  # the broker's defaults
