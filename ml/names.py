"""The registered model names: what training registers, scoring loads and gold records."""

FRAUD, RETRY, CHURN = "payments-fraud", "payments-retry", "payments-churn"
#: Every model gold scores with, in the order of the score columns.
MODEL_NAMES: tuple[str, ...] = (FRAUD, RETRY, CHURN)
