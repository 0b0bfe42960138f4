"""Data contracts: Pandera row contracts (``contracts``), Great Expectations batch suites as code
(``suites``) and the gates that run them (``gates``).

Nothing is imported here, so ``import quality.contracts`` does not pay Great Expectations' import.
"""
