"""Profiles, statistics, drift tests and table fingerprints: pure building blocks that
datasets, evaluation and monitoring share."""
