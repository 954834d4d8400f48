"""What a promotion decided: each gate's verdict with its evidence, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.core.errors import Conflict


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True)
class PromotionReport:
    model: str
    version: int
    alias: str
    current_version: int | None
    results: list[GateResult] = field(default_factory=list)
    forced: bool = False
    reason: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "current_version": self.current_version,
            "passed": self.passed,
            "forced": self.forced,
            "reason": self.reason,
            "gates": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromotionReport:
        """The report `to_dict` wrote (as a server sends it)."""
        results = [
            GateResult(g["gate"], g["passed"], g["message"], g.get("evidence") or {}) for g in data["gates"]
        ]
        return cls(
            data["model"], data["version"], data["alias"], data["current_version"], results,
            forced=data["forced"], reason=data["reason"],
        )  # fmt: skip

    def summary(self) -> str:
        verdict = "passed" if self.passed else ("forced past failing gates" if self.forced else "refused")
        lines = [f"promotion of {self.model} version {self.version} to @{self.alias}: {verdict}"]
        lines += [f"  [{'pass' if r.passed else 'FAIL'}] {r.gate}: {r.message}" for r in self.results]
        return "\n".join(lines)


class PromotionRefused(Conflict):
    def __init__(self, report: PromotionReport) -> None:
        self.report = report
        super().__init__(report.summary() + "\n(--force with a --reason promotes anyway, on the record)")
