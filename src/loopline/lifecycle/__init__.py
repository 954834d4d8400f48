"""The storage lifecycle: retention policies and garbage collection (`loopline gc`)."""
