"""One event's predictions with the champions, for the scoring API: the online features
(``ml.online``) in, the probabilities gold would write out (``ml.scoring`` for a batch).

LightGBM's single-row path (``ml.rowpredict``), one thread: for a row, threads cost more than
they save, and the API serves many requests at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.metrics import CANDIDATE_DELAYS_H
from ml.online import Features, design_row, with_retry_delay
from ml.registry import Champion
from ml.rowpredict import predict_rows


@dataclass(frozen=True)
class RetryGrid:
    """The success probability of retrying after each candidate delay, and the best one."""

    delays_hours: tuple[int, ...]
    probabilities: tuple[float, ...]

    @property
    def best(self) -> int:
        """Index of the recommended delay (the first of equals, as ``ml.metrics.recommend``)."""
        return int(np.argmax(self.probabilities))


def probability(champion: Champion, feats: Features) -> float:
    """The champion's probability for one event (fraud, churn)."""
    return predict_rows(champion.booster, design_row(feats, champion.features))[0]


def retry_grid(champion: Champion, feats: Features) -> RetryGrid:
    """The retry model over every candidate delay of a failed payment."""
    rows = np.vstack(
        [design_row(with_retry_delay(feats, d), champion.features) for d in CANDIDATE_DELAYS_H]
    )
    return RetryGrid(CANDIDATE_DELAYS_H, tuple(predict_rows(champion.booster, rows)))
