"""Monitoring: reference profiles, drift tests, monitors over the prediction log, alerts."""

from loopline.profiling.drift import ColumnDrift, DriftResult, detect_drift
from loopline.profiling.profile import ReferenceProfile, build_profile

__all__ = ["ColumnDrift", "DriftResult", "ReferenceProfile", "build_profile", "detect_drift"]
