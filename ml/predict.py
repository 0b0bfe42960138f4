"""One event's predictions with the champions, for the scoring API: the online features
(``ml.online``) in, the probabilities gold would write out (``ml.scoring`` for a batch).

LightGBM's single-row path (``ml.rowpredict``), one thread: for a row, threads cost more than
they save, and the API serves many requests at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.features import DELAY_FEATURES
from ml.metrics import CANDIDATE_DELAYS_H
from ml.online import Features, delay_features, design_row
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
    """The retry model over every candidate delay of a failed payment: the event's row once,
    only its delay features changed per delay."""
    names = champion.features
    rows = np.repeat(design_row(feats, names), len(CANDIDATE_DELAYS_H), axis=0)
    delayed = [(i, n) for i, n in enumerate(names) if n in DELAY_FEATURES]
    for row, delay in zip(rows, CANDIDATE_DELAYS_H, strict=True):
        values = delay_features(feats["_clock"], delay)  # type: ignore[arg-type]
        for i, name in delayed:
            row[i] = values[name]
    return RetryGrid(CANDIDATE_DELAYS_H, tuple(predict_rows(champion.booster, rows)))
