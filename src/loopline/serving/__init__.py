"""Serving: deployments with traffic policies, the online server, batch scoring and
packaging for clusters. Its prediction log is the `predictions` package's."""
