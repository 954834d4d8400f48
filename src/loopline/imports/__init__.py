"""Bringing history kept by other systems into loopline."""
