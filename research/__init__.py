"""Exploration and measurement scripts behind the model card's rounds (hyperparameter searches, GPU trials,
calibration and interval checks, model comparisons). Not part of the product: nothing in ``forensic_face``
or ``tests`` imports them, and they are not installed. Run them from the repository root with
``.venv/bin/python -m research.NAME ...`` (each module's docstring gives its command line)."""
