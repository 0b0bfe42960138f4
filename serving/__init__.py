"""The online scoring API (``lakehouse scoring``): fraud, retry, churn and recovery answers for one
payment at a time, from the MLflow champions, with the features gold computes (``ml.online``).

``app`` (routes, errors, health) · ``answers`` (each endpoint's answer as a function) · ``events``
(a request as a silver event) · ``schemas`` (what is sent and answered) · ``state`` (champions and
online features, kept fresh in a thread). See ``docs/architecture.md``, "Online scoring".
"""
