"""Pipelines: steps traced into a graph, run with caching, retries and timeouts on this
process, worker processes or Ray. The SDK's `loopline.pipeline` runs them with its stores."""

from loopline.pipelines.definition import Pipeline, Step, StepOptions, step
from loopline.pipelines.runner import PipelineFailed, PipelineResult, PipelineRunner

__all__ = ["Pipeline", "PipelineFailed", "PipelineResult", "PipelineRunner", "Step", "StepOptions", "step"]
