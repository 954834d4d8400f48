"""What a server holds for one deployment: the loaded version behind each arm, and the
hot swap that follows policy changes and alias moves while requests keep flowing.

Every `refresh_interval` the deployment's revision and the versions its targets resolve
to are read. When either changed, the versions not yet loaded are loaded and warmed off
the event loop, then the routing state is replaced in one assignment: requests already
running finish on the state they started with, new ones get the new state.

A policy's prediction-log treatments become the state's `LogRedaction`, with this server's
hash key (a policy that hashes is refused by a server without one).

A policy that declares online features gets a `DeploymentFeatures` per build, resolved then;
a rebuild keeps the old one when the resolved features did not change, and otherwise retires
it (it closes once the requests using it are done).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from loopline.core.errors import InvalidInput
from loopline.core.registry import ModelVersion
from loopline.core.traffic import Arm, ArmChooser, TrafficPolicy
from loopline.models import LoadedModel
from loopline.models.loaded import ArrayScorer
from loopline.predictions.log import LogRedaction
from loopline.services import Deployments, Registry
from loopline.serving.batching import MicroBatcher
from loopline.serving.features import (
    DeploymentFeatures,
    FeatureCatalog,
    catalog_views,
    resolve_features,
)

log = logging.getLogger("loopline.serving")


@dataclass(frozen=True)
class ServingOptions:
    batching: bool = True
    max_batch_rows: int = 64
    max_batch_wait: float = 0.002
    refresh_interval: float = 2.0
    trust: bool = False  # whether pickled (python_function) models may be served


@dataclass
class ServedArm:
    arm: Arm
    version: ModelVersion
    model: LoadedModel
    scorer: ArrayScorer | None  # the float-matrix fast path, when the model allows it
    batcher: MicroBatcher | None

    @property
    def columns(self) -> list[str]:
        signature = self.model.signature
        return signature.input_names if signature is not None else []

    @functools.cached_property
    def fields(self) -> frozenset[str]:
        """The request fields the model takes (none listed: it has no signature)."""
        return frozenset(self.columns)


@dataclass
class RoutingState:
    revision: int
    policy: TrafficPolicy
    arms: dict[str, ServedArm]
    chooser: ArmChooser
    extra_fields: str = "refuse"  # the deployment's rule for fields a model does not take
    features: DeploymentFeatures | None = None  # the online features joined to every request
    redaction: LogRedaction | None = None  # what the prediction log does with named inputs

    def answering(self, key: str | None) -> ServedArm:
        return self.arms[self.chooser.choose(key).name]

    @property
    def shadow(self) -> ServedArm | None:
        arm = self.policy.shadow_arm
        return None if arm is None else self.arms[arm.name]

    def fingerprint(self) -> tuple[int, str, tuple[tuple[str, str, int], ...]]:
        arms = tuple(sorted((n, a.version.model, a.version.version) for n, a in self.arms.items()))
        return self.revision, self.extra_fields, arms


class DeploymentRuntime:
    """One deployment on a server: its routing state, built and kept current. `features`
    gives the feature store, for a deployment that declares online features (opened only
    then)."""

    def __init__(
        self,
        name: str,
        deployments: Deployments,
        registry: Registry,
        options: ServingOptions,
        batch_observer: Callable[[str, int, int], None] | None = None,
        features: Callable[[], FeatureCatalog] | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        self.name = name
        self._hash_key = hash_key  # what the prediction log hashes under
        self._deployments = deployments
        self._registry = registry
        self._options = options
        self._batch_observer = batch_observer  # (deployment, version, rows) of each model call
        self._features = features
        self.state: RoutingState | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.swaps = 0

    async def start(self) -> None:
        self.state = await asyncio.to_thread(self._build, None)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._options.refresh_interval)
            try:
                await self.refresh()
            except Exception:  # the deployment keeps serving what it has
                log.exception("refreshing deployment %s failed; serving the current versions", self.name)

    async def refresh(self) -> bool:
        """Load what changed and swap it in; returns whether anything changed."""
        current = self.state
        deployment = await asyncio.to_thread(self._deployments.get, self.name)
        policy = TrafficPolicy.from_dict(deployment.policy)
        resolved = await asyncio.to_thread(self._deployments.resolve, policy)
        arms = tuple(sorted((n, v.model, v.version) for n, v in resolved.items()))
        wanted = (deployment.revision, deployment.extra_fields, arms)
        if current is not None and current.fingerprint() == wanted:
            return False
        self.state = await asyncio.to_thread(self._build, current)
        self.swaps += 1
        old = None if current is None else current.features
        if old is not None and old is not self.state.features:
            old.retire()  # requests on the old state keep it until they are done
        log.info("deployment %s now serves %s", self.name, policy.describe())
        return True

    def _build(self, previous: RoutingState | None) -> RoutingState:
        deployment = self._deployments.get(self.name)
        policy = TrafficPolicy.from_dict(deployment.policy)
        resolved = self._deployments.resolve(policy)
        loaded = {}
        if previous is not None:
            loaded = {(a.version.model, a.version.version): a for a in previous.arms.values()}
        arms = {}
        for arm in policy.arms:
            version = resolved[arm.name]
            reuse = loaded.get((version.model, version.version))
            if reuse is not None:
                arms[arm.name] = ServedArm(arm, version, reuse.model, reuse.scorer, reuse.batcher)
            else:
                arms[arm.name] = self._load(arm, version)
        treated = policy.log_treatments  # refused without a key for its hashes: before anything opens
        redaction = None if treated is None else LogRedaction(treated, self._hash_key)
        features = self._open_features(policy, previous)  # last: nothing after it can fail
        return RoutingState(
            deployment.revision, policy, arms, ArmChooser(policy), deployment.extra_fields, features,
            redaction,
        )  # fmt: skip

    def _open_features(
        self, policy: TrafficPolicy, previous: RoutingState | None
    ) -> DeploymentFeatures | None:
        """The build's features: resolved now (unpinned refs take the newest view version),
        the previous build's lookup when they resolve to the same."""
        declared = policy.declared_features
        if declared is None:
            return None
        if self._features is None:
            raise InvalidInput(
                f"deployment {self.name!r} declares online features, and this server has no feature "
                "store to look them up in: serve it over a local store"
            )
        catalog = self._features()
        resolved = resolve_features(declared, catalog_views(catalog))
        kept = None if previous is None else previous.features
        if kept is not None and kept.identity == DeploymentFeatures.identity_of(declared, resolved):
            return kept
        return DeploymentFeatures.open(self.name, declared, resolved, catalog)

    def _load(self, arm: Arm, version: ModelVersion) -> ServedArm:
        model = self._registry.load(version.uri, trust=self._options.trust)
        scorer = model.array_scorer()
        example = model.metadata.example_frame()
        if example is not None:  # warm up: the first real request should not pay for it
            model.predict(example)
            if scorer is not None and model.signature is not None:
                scorer(example[model.signature.input_names].to_numpy(dtype=np.float64))
        batcher = None
        if scorer is not None and self._options.batching:
            observer = self._batch_observer
            on_batch = None if observer is None else functools.partial(observer, self.name, version.version)
            batcher = MicroBatcher(
                scorer, self._options.max_batch_rows, self._options.max_batch_wait, on_batch
            )
        return ServedArm(arm, version, model, scorer, batcher)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.state is not None:
            for arm in self.state.arms.values():
                if arm.batcher is not None:
                    await arm.batcher.close()
            if self.state.features is not None:
                self.state.features.retire()
