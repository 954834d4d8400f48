"""Serving: deployments with traffic policies, the online server, the prediction log,
batch scoring and packaging for clusters."""
