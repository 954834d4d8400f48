"""Experiment tracking: experiments, runs, their values and artifacts; the tracker behind the
SDK's active runs and its background metric writer."""
