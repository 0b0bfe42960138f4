"""The running scoring API follows the registry and silver without a restart: a champion alias
moved while it serves shows in the next answers, and events the micro-batch lands in silver
join its online features."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import polars as pl
import pytest

from flows.context import Lakehouse
from ml import registry
from ml.names import FRAUD
from serving.app import create_app
from serving.events import FRAUD_PATH
from settings import get_settings
from tests.serving.test_app import payment
from tests.support.history import small_silver, trained_small
from tests.support.landing import set_env
from tests.support.server import serve
from warehouse import tables as T

pytestmark = pytest.mark.integration


@pytest.fixture
def running(scored_lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The scoring API served by uvicorn in a thread, refreshing every 0.2 s."""
    set_env(monkeypatch, scoring_refresh_seconds="0.2")
    with serve(create_app(get_settings())) as url:
        yield url


def wait_for(check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the running API did not pick up the change"
        time.sleep(0.1)


def test_a_moved_champion_alias_is_served_without_a_restart(running: str) -> None:
    def version() -> str:
        answer = httpx.post(f"{running}{FRAUD_PATH}", json=payment(), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["model"]["version"]

    assert version() == "1"
    second = registry.register_model(trained_small()["fraud"])  # a tie: not promoted by itself
    assert second.version == "2" and not second.promoted
    registry.set_champion(FRAUD, second.version)  # an operator moves the alias

    wait_for(lambda: version() == "2")


def test_events_landed_in_silver_join_the_online_features(
    running: str, scored_lakehouse: Lakehouse
) -> None:
    def held() -> tuple[int, int]:
        ready = httpx.get(f"{running}/health/ready", timeout=10).json()
        return ready["silver_snapshot_id"], ready["history_events"]

    _, before = held()
    silver = small_silver()
    newest = silver["provider_created_at"].max()
    recent = silver.filter(pl.col("provider_created_at") > newest - timedelta(hours=6))
    # more events within the held span (the newest stays, so nothing ages out of the index)
    more = recent.with_columns(
        event_id=pl.col("event_id") + "_more",
        provider_created_at=pl.col("provider_created_at") - timedelta(hours=1),
    )
    snapshot = scored_lakehouse.append(T.SILVER_PAYMENT_EVENTS, more.to_arrow(), summary={})

    wait_for(lambda: held() == (snapshot, before + more.height))
