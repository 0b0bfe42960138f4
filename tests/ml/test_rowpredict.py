"""LightGBM's single-row API (``ml.rowpredict``, private library internals behind one function)
predicts what ``Booster.predict`` does, for every model and for rows with missing values: an
upgrade that changes either fails here."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import build_features, design_matrix, with_retry_delay
from ml.rowpredict import predict_rows
from tests.support.history import small_silver, trained_small


@pytest.mark.parametrize("kind", ["fraud", "retry", "churn"])
def test_single_row_predictions_equal_booster_predict(kind: str) -> None:
    model = trained_small()[kind]
    feats = with_retry_delay(build_features(small_silver().tail(3000)), 24.0)
    rows = design_matrix(feats, model.spec.features)[:500]
    rows[::7, ::3] = np.nan  # missing values take the default branches
    expected = model.booster.predict(rows, num_threads=1)
    assert predict_rows(model.booster, rows) == pytest.approx(expected.tolist(), rel=1e-12)


def test_a_row_of_the_wrong_width_is_refused() -> None:
    model = trained_small()["fraud"]
    with pytest.raises(ValueError, match="columns"):
        predict_rows(model.booster, np.zeros((1, len(model.spec.features) + 1)))
