"""Online features equal offline features: for the events gold scored, the scoring API's
feature function and its endpoints give the features ``ml.features.build_features`` computes from
the whole silver history (what training reads) and the scores gold wrote."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.context import Lakehouse
from ml.features import FAILED, build_features, select_inputs
from ml.scoring import ELIGIBLE_TYPES, FRAUD_TYPES
from serving import answers
from serving.events import CHURN_PATH, FRAUD_PATH, RETRY_PATH, request_body
from tests.serving.conftest import CREATED
from tests.support.history import small_silver
from warehouse import io
from warehouse import tables as T

pytestmark = pytest.mark.integration


def gold_scored_last_day(lh: Lakehouse) -> pl.DataFrame:
    """Silver rows of the last day's events that gold scored, with their scores."""
    lh.refresh()
    scores = pl.from_arrow(io.scan(lh.table(T.GOLD_PAYMENT_SCORES)))
    last_day = scores.filter(pl.col(CREATED) >= scores[CREATED].max() - pl.duration(days=1))
    silver = small_silver().filter(pl.col("event_type").is_in(ELIGIBLE_TYPES))
    rows = silver.join(last_day.drop(CREATED, "event_type", "customer_id"), on="event_id")
    assert rows.height > 100
    return rows.sort(CREATED, "event_id")


def test_online_features_of_gold_scored_events_equal_the_training_features(
    client, scored_lakehouse
) -> None:
    rows = gold_scored_last_day(scored_lakehouse)
    served = client.app.state.live.served
    assert served.covered_from is not None, "the index must hold less than silver for this test"
    assert rows[CREATED].min() >= served.covered_from
    online = [answers.features(served, e, _NO_LIMIT) for e in select_inputs(rows).to_dicts()]
    offline = build_features(rows, small_silver())
    frame = pl.DataFrame(online, schema=offline.schema).select(offline.columns)
    assert_frame_equal(frame, offline, rel_tol=1e-9, abs_tol=1e-12)


def test_endpoints_answer_what_gold_wrote_for_the_same_events(client, scored_lakehouse) -> None:
    rows = gold_scored_last_day(scored_lakehouse)
    checked = {FRAUD_PATH: 0, RETRY_PATH: 0, CHURN_PATH: 0}
    for row in rows.iter_rows(named=True):
        if row["event_type"] in FRAUD_TYPES:
            fraud = post(client, FRAUD_PATH, row)
            assert fraud["fraud_score"] == pytest.approx(row["fraud_score"], rel=1e-9)
            assert fraud["model"]["version"] == row["fraud_model_version"]
            checked[FRAUD_PATH] += 1
        if row["event_type"] == FAILED:
            retry = post(client, RETRY_PATH, row)
            assert retry["recommended_delay_hours"] == row["retry_delay_hours"]
            assert retry["success_probability"] == pytest.approx(
                row["retry_success_probability"], rel=1e-9
            )
            checked[RETRY_PATH] += 1
        if row["customer_id"] is not None:
            churn = post(client, CHURN_PATH, row)
            assert churn["churn_score"] == pytest.approx(row["churn_score"], rel=1e-9)
            assert churn["model"]["version"] == row["churn_model_version"]
            checked[CHURN_PATH] += 1
    assert min(checked.values()) > 10, checked


def post(client, path: str, row: dict) -> dict:
    response = client.post(path, json=request_body(row, path))
    assert response.status_code == 200, response.text
    return response.json()


_NO_LIMIT = timedelta(days=3650)
