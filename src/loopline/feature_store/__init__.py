"""The feature store: entities, versioned feature views and point-in-time training sets.

`ll.features` (loopline/features.py) is its SDK; this package is the service behind it.
"""
