"""Promotion policies: which gates a version must pass, in YAML or in Python.

gates:
  - metric_threshold: {metric: roc_auc, min: 0.85}
  - better_than_current: {metric: accuracy, margin: 0.0, alpha: 0.05}
  - signature_compatible
  - latency: {p95_ms: 20}
  - data_validation
  - parity: {attribute: sex, metric: selection_rate, max_gap: 0.1}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.registry.gates import GATE_KINDS, BetterThanCurrent, Gate, SignatureCompatible


@dataclass(frozen=True)
class Policy:
    gates: tuple[Gate, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        entries = data.get("gates") if isinstance(data, Mapping) else None
        if not isinstance(entries, Sequence) or isinstance(entries, str):
            raise InvalidInput("a promotion policy needs a list under 'gates'")
        return cls(tuple(_gate(entry, i) for i, entry in enumerate(entries, start=1)))

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"the policy is not valid YAML: {exc}") from None
        return cls.from_dict(data or {})

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        file = Path(path)
        if not file.is_file():
            raise InvalidInput(f"policy file {file} does not exist")
        return cls.from_yaml(file.read_text())

    def to_dict(self) -> dict[str, Any]:
        return {
            "gates": [{gate.kind: dataclasses.asdict(gate)} for gate in self.gates]  # type: ignore[call-overload]
        }


# Safe by default: a new version must accept what callers send and beat the holder.
DEFAULT_POLICY = Policy((SignatureCompatible(), BetterThanCurrent()))


def _gate(entry: Any, position: int) -> Gate:
    kind, settings = (entry, {}) if isinstance(entry, str) else _single_item(entry, position)
    factory = GATE_KINDS.get(kind)
    if factory is None:
        raise InvalidInput(f"gate {position}: unknown kind {kind!r}; kinds are {sorted(GATE_KINDS)}")
    if not isinstance(settings, Mapping):
        raise InvalidInput(f"gate {position} ({kind}): settings must be a mapping, got {settings!r}")
    allowed = {f.name for f in dataclasses.fields(factory)}  # type: ignore[arg-type]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise InvalidInput(
            f"gate {position} ({kind}): unknown settings {unknown}; it takes {sorted(allowed)}"
        )
    try:
        return factory(**settings)
    except TypeError as exc:
        raise InvalidInput(f"gate {position} ({kind}): {exc}") from None


def _single_item(entry: Any, position: int) -> tuple[str, Any]:
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise InvalidInput(
            f"gate {position}: write it as a kind, or as {{kind: {{settings}}}}, not {entry!r}"
        )
    ((kind, settings),) = entry.items()
    return kind, settings or {}
