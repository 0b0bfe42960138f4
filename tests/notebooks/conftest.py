"""A small demo warehouse for the notebook tests, built once per module on the session broker.

Three weeks of labelled history for 60 customers plus a few malformed deliveries go through the
real micro-batch pipeline. The first two days (at least up to the third failed payment, whatever
hour the history ends at) arrive before any model has a champion (their score columns stay null,
as in a fresh lakehouse); for the rest, stand-in champions score them: fixed
logistic functions of a few real features, because training and registering three LightGBM models
in MLflow takes over a minute here. Scoring, gates and ``gold.merchant_daily`` run as in
production.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from flows.context import Lakehouse
from flows.loop import run_loop
from lakehouse.broker import LocalBroker
from ml import registry
from ml.registry import Champion
from settings import get_settings
from simulator.events import encode
from simulator.history import generate_history
from simulator.stream import MALFORMED_KINDS, malform
from tests.support.broker import Deliveries, KafkaForTest, commit_group_offsets, end_offsets_of

DAYS, CUSTOMERS, SEED = 21, 60, 17
UNSCORED_DAYS = 2  # history delivered before any champion exists …
UNSCORED_FAILURES = 3  # … and at least this many failed payments in it
FAILED_PAYMENT = "payment_intent.payment_failed"
MALFORMED_EARLY, MALFORMED_LATE, REDELIVERED = 4, 8, 5


@dataclass(frozen=True)
class DemoWarehouse:
    """Where the demo lives and what went into it."""

    root: Path  # working directory of the kernels (no .env in it)
    home: Path  # LAKEHOUSE_HOME
    events: int  # valid history events delivered
    malformed: int  # malformed deliveries
    redelivered: int  # valid events delivered a second time
    seconds: float  # time to build it


class StandIn:
    """A stand-in for a LightGBM booster: a fixed logistic function of named feature columns."""

    def __init__(self, features: tuple[str, ...], logit: Callable[[dict], np.ndarray]) -> None:
        self.features, self._logit = features, logit

    def predict(self, matrix: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        cols = {name: np.nan_to_num(matrix[:, i]) for i, name in enumerate(self.features)}
        return 1.0 / (1.0 + np.exp(-self._logit(cols)))


def stand_in_champions() -> dict[str, Champion]:
    def fraud(c: dict) -> np.ndarray:
        return (
            -4.0
            + 2.5 * c["card_is_new"]
            + 1.2 * c["is_foreign_card"]
            + 0.4 * np.minimum(c["c_attempts_24h"], 6)
            + 0.5 * np.log1p(np.maximum(c["amount_vs_mean_30d"], 0))
        )

    def retry(c: dict) -> np.ndarray:
        wait = np.log1p(c["delay_hours"])  # the best wait grows with the linear term's weight
        broke = c["decline_code_cat"] == 0  # insufficient_funds: wait for pay day
        soft = np.isin(c["decline_code_cat"], (1, 2))  # generic_decline, do_not_honor: soon
        weight = 0.9 + 0.6 * broke - 0.25 * soft
        return -1.2 + weight * wait - 0.16 * wait**2 - 0.3 * np.minimum(c["c_fail_30d"], 5)

    def churn(c: dict) -> np.ndarray:
        quiet = np.minimum(c["c_hours_since_success"], 720) / 24
        return -3.0 + 0.25 * quiet + 1.5 * c["c_fail_rate_30d"]

    models = {
        "payments-fraud": StandIn(
            ("card_is_new", "is_foreign_card", "c_attempts_24h", "amount_vs_mean_30d"), fraud
        ),
        "payments-retry": StandIn(("delay_hours", "decline_code_cat", "c_fail_30d"), retry),
        "payments-churn": StandIn(("c_hours_since_success", "c_fail_rate_30d"), churn),
    }
    return {
        name: Champion(name, "0", model, model.features, {"stand_in": "true"})  # type: ignore[arg-type]
        for name, model in models.items()
    }


def drain() -> int:
    """Run micro-batches until one finds nothing to do in any layer; the batches run.

    One batch per ``run_loop`` call, idle judged by rows in: the loop's own idle test also
    needs zero lag, which a fresh consumer reports as the whole topic for partitions it has
    not fetched from yet (the session broker keeps every test's messages).
    """
    lh = Lakehouse()
    try:
        for batches in range(1, 50):
            totals = run_loop(
                lh,
                max_records=10_000,
                max_seconds=1.0,
                until_idle=False,
                run_for_seconds=0,
                log=lambda line: None,
            )
            if not sum(totals.rows_in.values()):
                return batches
        raise AssertionError("the pipeline did not become idle")
    finally:
        lh.close()


def _bodies(events: list[dict], rng: random.Random, count: int) -> list[bytes | dict]:
    """The events, with ``count`` malformed copies of some of them spread in."""
    bodies: list[bytes | dict] = list(events)
    for i in range(count):
        broken = malform(rng.choice(events), MALFORMED_KINDS[i % len(MALFORMED_KINDS)], rng)
        bodies.insert(rng.randrange(len(bodies) + 1), broken)
    return bodies


@pytest.fixture(scope="module")
def demo_warehouse(
    session_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> DemoWarehouse:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("notebooks-demo")
    home = root / "lakehouse-home"
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    history = list(generate_history(DAYS, CUSTOMERS, seed=SEED, end=end, fraud_rate=0.2))
    cut = (end - timedelta(days=DAYS - UNSCORED_DAYS)).timestamp()
    # the history depends on the hour it ends at: some hours' first two days hold no failed
    # payment, so the cut also waits for a few (some failures must stay unscored, whatever hour)
    failures = sorted(e["created"] for e in history if e["type"] == FAILED_PAYMENT)
    cut = max(cut, failures[UNSCORED_FAILURES - 1] + 1)
    early = [e for e in history if e["created"] < cut]
    late = [e for e in history if e["created"] >= cut]
    rng = random.Random(SEED)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LAKEHOUSE_"):
                mp.delenv(name)
        mp.chdir(root)
        group = f"test-notebooks-{uuid.uuid4().hex[:12]}"
        start = end_offsets_of(session_broker.bootstrap)
        commit_group_offsets(session_broker.bootstrap, group, start)
        mp.setenv("LAKEHOUSE_HOME", str(home))
        mp.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS", session_broker.bootstrap)
        mp.setenv("LAKEHOUSE_CONSUMER_GROUP", group)
        get_settings.cache_clear()
        deliveries = Deliveries(KafkaForTest(session_broker, group, start))

        deliveries.send(_bodies(early, rng, MALFORMED_EARLY))
        drain()  # no champion yet: scores stay null
        mp.setattr(registry, "load_champions", stand_in_champions)
        deliveries.send([*_bodies(late, rng, MALFORMED_LATE), *map(encode, late[:REDELIVERED])])
        drain()
    get_settings.cache_clear()
    return DemoWarehouse(
        root,
        home,
        events=len(history),
        malformed=MALFORMED_EARLY + MALFORMED_LATE,
        redelivered=REDELIVERED,
        seconds=time.monotonic() - started,
    )
