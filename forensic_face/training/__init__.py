"""Datasets, teacher cache, training and evaluation of the models (no Qt)."""
