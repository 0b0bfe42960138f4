"""LightGBM's single-row prediction API, for the scoring API's one-event answers.

``Booster.predict`` on one row costs about 16 µs, nearly all of it Python around the C call (a
predictor object, a deep copy of its parameters, a parameter string per call); LightGBM's C API has
a single-row path whose configuration is prepared once
(``LGBM_BoosterPredictForMatSingleRowFastInit``, then ``...SingleRowFast`` per row): about 3 µs
(measured on the two-core machine, models of 15 leaves and a few hundred trees). The Python package
does not wrap it, so this module calls the C functions through the package's own loaded library and
error check (``lightgbm.basic._LIB``, ``_safe_call``), the one place that does.
``tests/ml/test_rowpredict.py`` holds it equal to ``Booster.predict`` and fails loudly if an upgrade
changes either.
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _safe_call

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for a binary objective
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_predictors: weakref.WeakKeyDictionary[lgb.Booster, _RowPredictor] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class _RowPredictor:
    """A booster's single-row configuration (one thread; one caller at a time)."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.columns = booster.num_feature()
        self._config = ctypes.c_void_p()
        iterations = booster.best_iteration if booster.best_iteration > 0 else -1
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(iterations),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self.columns),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        # buffers and their pointers made once: building ctypes pointers costs more than the call
        self._row, self._out, self._length = np.empty(self.columns), np.empty(1), ctypes.c_int64()
        self._args = (
            self._config,
            self._row.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(self._length),
            self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        self._lock = threading.Lock()
        # freed with the predictor, or at exit while the library is still loaded
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self._config)

    def __call__(self, row: np.ndarray) -> float:
        with self._lock:
            self._row[:] = row
            _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFast(*self._args))
            return float(self._out[0])


def predict_rows(booster: lgb.Booster, rows: np.ndarray) -> list[float]:
    """``booster.predict(rows)`` for a few rows (float64, one per model input row), one C call
    each."""
    predictor = _predictors.get(booster)
    if predictor is None:
        with _lock:
            predictor = _predictors.setdefault(booster, _RowPredictor(booster))
    if rows.shape[1] != predictor.columns:
        raise ValueError(f"rows have {rows.shape[1]} columns, the model {predictor.columns}")
    return [predictor(row) for row in rows]
