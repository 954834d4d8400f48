"""The interface of evaluation and promotion: metrics of a version on data, and the gates
a version passes before an alias moves to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from loopline.core.entities import Principal
from loopline.core.promotion import PromotionReport
from loopline.core.registry import Evaluation

if TYPE_CHECKING:
    import pandas as pd


class PolicyDocument(Protocol):
    """A promotion policy that writes itself as its YAML document (a `Policy` of gates)."""

    def to_dict(self) -> dict[str, Any]:
        """The document: `{"gates": [...]}`."""


class Promotion(Protocol):
    """Evaluations of model versions, and promotions through a policy's gates."""

    principal: Principal

    def evaluate(
        self,
        uri: str,
        data: pd.DataFrame,
        target: str,
        *,
        task: str | None = None,
        slices: Sequence[str] = (),
        dataset_name: str = "evaluation",
        trust: bool = False,
    ) -> Evaluation:
        """Metrics (per slice too), latency and plots of the version at `uri` on `data`,
        stored with the version. `task` is classification or regression (default: the model's)."""

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "champion",
        *,
        policy: PolicyDocument | Mapping[str, Any] | None = None,
        data: pd.DataFrame | None = None,
        target: str | None = None,
        task: str | None = None,
        force_reason: str | None = None,
        trust: bool = False,
        baseline: str | None = None,
    ) -> PromotionReport:
        """Move `alias` to `version` if it passes the gates of `policy` (its YAML document;
        by default: signature compatible and better than the current holder on `data`).
        Refusals raise PromotionRefused with the report; `force_reason` overrides, on record.
        Comparisons are against the holder of `alias`, or of `baseline` if given."""

    def evaluations(self, name: str, version: int) -> list[Evaluation]:
        """Every evaluation stored with a version, oldest first."""

    def evaluation_plot(self, name: str, version: int, evaluation_id: int, plot: str) -> bytes:
        """The PNG of one plot (`roc.png`...) of a stored evaluation."""

    def model_card(self, name: str, version: int, *, html: bool = False) -> str:
        """The model card of a version (purpose, lineage, data, metrics, slices, gates), as
        Markdown, or HTML."""
