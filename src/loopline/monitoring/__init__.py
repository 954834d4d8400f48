"""Monitoring: reference profiles, drift tests, monitors over the prediction log, alerts."""

from loopline.monitoring.drift import ColumnDrift, DriftResult, detect_drift
from loopline.monitoring.profile import ReferenceProfile, build_profile

__all__ = ["ColumnDrift", "DriftResult", "ReferenceProfile", "build_profile", "detect_drift"]
