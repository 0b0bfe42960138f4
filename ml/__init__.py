"""Models: features (pure Polars), labels, training, the MLflow registry and batch scoring.

Two process-level library knobs are set here, before LightGBM or MLflow load, unless the
environment already sets them: LightGBM's OpenMP threads wait passively (spinning threads on a
shared two-core machine made one training 30x slower), and MLflow sends no usage telemetry.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
