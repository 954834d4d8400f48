"""Traffic policies: how a deployment's requests reach model versions.

- single: every request to one target.
- canary: weighted random split (90/10...), per request.
- ab: weighted split sticky by a key (a record field or a header), so a user keeps an arm.
- shadow: the first arm answers; the second gets a copy of every request, and its answers
  are logged, never returned.

Targets are model URIs. An alias (`models:/churn@champion`) is followed live: when it
moves, the deployment moves with it.

A policy may also declare online features (`FeatureDeclaration`): feature refs the server
looks up by each request's entity keys and joins to its rows before any arm's model sees
them. They belong to the policy, so they are versioned, audited and rolled back with it.

A policy may also say what its prediction log does with named input columns (`LogPolicy`:
drop, mask or hash them before anything is written), versioned with it the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopline.core.errors import Conflict, InvalidInput
from loopline.core.features import FeatureRef, check_identifier
from loopline.core.names import alias_name
from loopline.core.personal_data import LogPolicy
from loopline.core.registry import DeploymentRevision, ModelVersion, VersionStatus
from loopline.core.uris import parse_model_uri

KINDS = ("single", "canary", "ab", "shadow")
MAX_WEIGHT = 1e6  # weights are shares: huge ones only lose precision (1e308 + 1e308 is Infinity)
MAX_FEATURE_REFS = 500  # one lookup per request reads them all: a bound keeps requests cheap


@dataclass(frozen=True, slots=True)
class FeatureDeclaration:
    """The online features a deployment joins to each request's rows: `refs` as training sets
    ask for them (`view:feature`, `view@3:feature`, `view:*`), a default per feature column
    for entities without a (fresh) value, and `full_names` for `view__feature` columns.

    In `TrafficPolicy.to_dict` it is `{"refs": [...], "defaults": {...}, "full_names": ...}`
    under `features`. An empty one (no refs) declares no features: given to
    `Deployments.set_traffic` it removes them, where a policy without any keeps the current."""

    refs: tuple[str, ...]
    defaults: tuple[tuple[str, Any], ...] = ()  # (column, value), sorted by column
    full_names: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.refs, str) or not isinstance(self.refs, tuple | list):
            raise InvalidInput(f"feature refs are a list of view:feature, not {self.refs!r:.80}")
        refs = tuple(self.refs)
        if len(refs) > MAX_FEATURE_REFS:
            raise InvalidInput(
                f"a deployment declares at most {MAX_FEATURE_REFS} feature refs, not {len(refs)}"
            )
        for ref in refs:
            if not isinstance(ref, str):
                raise InvalidInput(f"feature ref {ref!r:.80} is not text (view:feature)")
            FeatureRef.parse(ref)
        if len(set(refs)) != len(refs):
            raise InvalidInput(
                f"feature ref {next(r for r in refs if refs.count(r) > 1)!r} is declared twice"
            )
        defaults = dict(self.defaults)
        if defaults and not refs:
            raise InvalidInput("feature defaults need feature refs to be the defaults of")
        for name, value in defaults.items():
            check_identifier("feature default's name", name)
            if not _is_scalar(value):
                raise InvalidInput(
                    f"the default of feature {name!r} must be a number, a string or a boolean, "
                    f"not {value!r:.80}"
                )
        object.__setattr__(self, "refs", refs)  # frozen: the normalized forms are set once, here
        object.__setattr__(self, "defaults", tuple(sorted(defaults.items())))
        object.__setattr__(self, "full_names", bool(self.full_names))

    @classmethod
    def of(
        cls, refs: Sequence[str], defaults: Mapping[str, Any] | None = None, *, full_names: bool = False
    ) -> FeatureDeclaration:
        """A declaration from a list of refs and a mapping of defaults."""
        return cls(tuple(refs), tuple((defaults or {}).items()), full_names)

    @property
    def default_values(self) -> dict[str, Any]:
        """Each feature column's default, by column name."""
        return dict(self.defaults)

    def to_dict(self) -> dict[str, Any]:
        """The declaration as a policy stores it (JSON)."""
        data: dict[str, Any] = {"refs": list(self.refs)}
        if self.defaults:
            data["defaults"] = self.default_values
        if self.full_names:
            data["full_names"] = True
        return data

    @classmethod
    def from_dict(cls, data: object) -> FeatureDeclaration:
        """The declaration of a stored or sent policy; InvalidInput says what is malformed."""
        if not isinstance(data, Mapping) or not set(data) <= {"refs", "defaults", "full_names"}:
            raise InvalidInput(
                f"features {data!r:.120} must be {{refs: [view:feature, ...], defaults: {{name: value}}, "
                "full_names: false}"
            )
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise InvalidInput(f"feature defaults {defaults!r:.80} must map feature names to values")
        full_names = data.get("full_names", False)
        if not isinstance(full_names, bool):
            raise InvalidInput(f"features' full_names is true or false, not {full_names!r:.40}")
        refs = data.get("refs") or []
        if not isinstance(refs, list | tuple):
            raise InvalidInput(f"feature refs are a list of view:feature, not {refs!r:.80}")
        return cls(tuple(refs), tuple(defaults.items()), full_names)

    def describe(self) -> str:
        """One line for people: the refs (the first five) and how many have defaults."""
        shown = ", ".join(self.refs[:5]) + (f" and {len(self.refs) - 5} more" if len(self.refs) > 5 else "")
        return f"features {shown}" + (f" (defaults for {len(self.defaults)})" if self.defaults else "")


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # a default is stored as JSON: no NaN or Infinity
    return isinstance(value, bool | int | str)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    target: str  # a model URI
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    kind: str
    arms: tuple[Arm, ...]
    key: str | None = None  # ab only: "field:NAME" or "header:NAME"
    features: FeatureDeclaration | None = None  # online features joined to every request
    log: LogPolicy | None = None  # input columns the prediction log drops, masks or hashes

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"traffic policy kind {self.kind!r} is not one of {KINDS}")
        expected = {"single": (1, 1), "shadow": (2, 2), "canary": (2, 10), "ab": (2, 10)}[self.kind]
        if not expected[0] <= len(self.arms) <= expected[1]:
            raise InvalidInput(
                f"a {self.kind} policy takes {expected[0]} to {expected[1]} arms, not {len(self.arms)}"
            )
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise InvalidInput(f"arm names must differ, got {names}")
        for arm in self.arms:
            alias_name(arm.name)  # same rules as aliases: short, safe, unambiguous
            parse_model_uri(arm.target)
            if not 0 < arm.weight <= MAX_WEIGHT:  # NaN and Infinity fail too
                raise InvalidInput(
                    f"arm {arm.name!r} needs a weight above 0 and at most {MAX_WEIGHT:g}, got {arm.weight}"
                )
        if self.kind == "ab":
            if (
                self.key is None
                or not self.key.startswith(("field:", "header:"))
                or len(self.key.split(":", 1)[1]) == 0
            ):
                raise InvalidInput(
                    "an ab policy needs key='field:NAME' or key='header:NAME' to keep users on one arm"
                )
        elif self.key is not None:
            raise InvalidInput(f"a {self.kind} policy takes no key")
        if self.features is not None and not isinstance(self.features, FeatureDeclaration):
            raise InvalidInput(f"a policy's features are a FeatureDeclaration, not {self.features!r:.80}")
        if self.log is not None and not isinstance(self.log, LogPolicy):
            raise InvalidInput(f"a policy's log treatments are a LogPolicy, not {self.log!r:.80}")

    @classmethod
    def single(cls, target: str) -> TrafficPolicy:
        return cls("single", (Arm("main", target),))

    @classmethod
    def canary(cls, stable: str, candidate: str, percent: float) -> TrafficPolicy:
        if not 0 < percent < 100:
            raise InvalidInput(f"a canary takes between 0 and 100 percent, got {percent}")
        return cls("canary", (Arm("stable", stable, 100 - percent), Arm("canary", candidate, percent)))

    @classmethod
    def shadow(cls, primary: str, shadow: str) -> TrafficPolicy:
        return cls("shadow", (Arm("primary", primary), Arm("shadow", shadow)))

    @classmethod
    def ab(cls, arms: Sequence[tuple[str, str, float]], key: str) -> TrafficPolicy:
        return cls("ab", tuple(Arm(name, target, weight) for name, target, weight in arms), key)

    def with_features(self, features: FeatureDeclaration | None) -> TrafficPolicy:
        """This policy declaring `features` (None: no declaration, an empty one: none)."""
        return dataclasses.replace(self, features=features)

    def with_log(self, log: LogPolicy | None) -> TrafficPolicy:
        """This policy with prediction-log treatments `log` (None: no say, an empty one: none)."""
        return dataclasses.replace(self, log=log)

    @property
    def log_treatments(self) -> LogPolicy | None:
        """The columns the prediction log treats, None when it treats none."""
        return self.log if self.log else None

    @property
    def declared_features(self) -> FeatureDeclaration | None:
        """The features the policy joins to requests, None when it declares none."""
        return self.features if self.features is not None and self.features.refs else None

    @property
    def answering_arms(self) -> tuple[Arm, ...]:
        return self.arms[:1] if self.kind == "shadow" else self.arms

    @property
    def shadow_arm(self) -> Arm | None:
        return self.arms[1] if self.kind == "shadow" else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "arms": [{"name": a.name, "target": a.target, "weight": a.weight} for a in self.arms],
        }
        if self.key is not None:
            data["key"] = self.key
        if self.features is not None:  # an empty declaration too: set_traffic removes features by it
            data["features"] = self.features.to_dict()
        if self.log is not None:  # an empty one too, for the same reason
            data["log"] = self.log.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficPolicy:
        try:
            arms = tuple(
                Arm(str(a["name"]), str(a["target"]), float(a.get("weight", 1.0))) for a in data["arms"]
            )
            features = data.get("features")
            declared = None if features is None else FeatureDeclaration.from_dict(features)
            log = None if data.get("log") is None else LogPolicy.from_dict(data["log"])
            return cls(str(data["kind"]), arms, data.get("key"), declared, log)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"traffic policy {dict(data)!r} is malformed: {exc}") from None

    @staticmethod
    def shadow_arms(revisions: Sequence[DeploymentRevision], current: TrafficPolicy) -> list[str]:
        """The arms that shadowed in any of a deployment's revisions and do not answer now:
        their logged rows are copies of answered requests."""
        answering = {a.name for a in current.answering_arms}
        policies = (TrafficPolicy.from_dict(r.policy) for r in revisions)
        shadows = {arm.name for p in policies if (arm := p.shadow_arm) is not None}
        return sorted(shadows - answering)

    def describe(self) -> str:
        total = sum(a.weight for a in self.answering_arms)
        parts = [
            f"{a.name}={a.target}" + (f" ({a.weight / total:.0%})" if len(self.answering_arms) > 1 else "")
            for a in self.answering_arms
        ]
        if self.shadow_arm is not None:
            parts.append(f"shadow={self.shadow_arm.target}")
        declared = self.declared_features
        treated = self.log_treatments
        return (
            f"{self.kind}: "
            + ", ".join(parts)
            + (f", sticky by {self.key}" if self.key else "")
            + (f"; {declared.describe()}" if declared is not None else "")
            + (f"; {treated.describe()}" if treated is not None else "")
        )


class ArmChooser:
    """Picks the answering arm of a request, per the policy's weights."""

    def __init__(self, policy: TrafficPolicy, seed: int | None = None) -> None:
        self._arms = policy.answering_arms
        total = sum(a.weight for a in self._arms)
        self._cumulative = []
        running = 0.0
        for arm in self._arms:
            running += arm.weight / total
            self._cumulative.append(running)
        self._sticky = policy.kind == "ab"
        self._random = random.Random(seed)

    def choose(self, key: str | None = None) -> Arm:
        if len(self._arms) == 1:
            return self._arms[0]
        if self._sticky:
            if key is None:
                raise InvalidInput("this deployment runs an A/B test and needs its key in every request")
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64
        else:
            point = self._random.random()
        for arm, edge in zip(self._arms, self._cumulative, strict=True):
            if point < edge:
                return arm
        return self._arms[-1]


def serving_versions(
    policy: TrafficPolicy, resolve: Callable[[str], ModelVersion]
) -> dict[str, ModelVersion]:
    """The version each arm of `policy` serves now (`resolve` follows aliases); every one must
    be READY and not deleted."""
    served = {}
    for arm in policy.arms:
        version = resolve(arm.target)
        if version.status is not VersionStatus.READY or version.deleted:
            raise Conflict(f"arm {arm.name!r}: {version.uri} is not servable ({version.status.value})")
        served[arm.name] = version
    return served
