"""Builders and helpers shared by the tests (and the benchmarks), in one place.

- ``stripe``: signed webhook bodies written from Stripe's documented scheme (``sign``,
  ``make_event``, ``signed_headers``, the test secrets);
- ``bronze``: ``bronze.webhook_events`` rows of webhook bodies (``bronze_row``, ``bronze_frame``);
- ``history``: the small labelled history in silver and the models trained on it;
- ``tables``: small valid rows of the warehouse tables (``make_silver_events``, …);
- ``mlflow_store``: a migrated, empty MLflow store for a test's home;
- ``services``: a receiver served in a thread, topic tails, reading bronze batches;
- ``patching``: wrapping a function wherever it was imported (crash points, time breakdowns);
- ``stripe_standin``: a stand-in for Stripe's Events API (reconciliation), served in a thread;
- ``faults``: real faults (the catalog's write lock held by another process, a loader's reader
  child); ``prefect``: a real Prefect server and reads of its runs.

Fixtures stay in the ``conftest.py`` files; these are plain functions.
"""
