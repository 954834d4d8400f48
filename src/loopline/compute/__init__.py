"""Distributed compute: the connection to a Ray cluster that pipelines and batch scoring share."""
