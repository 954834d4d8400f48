"""Evaluation and promotion through a server. Evaluation data travels as Parquet; the server
loads the registered versions (never a pickled one for a client) and runs the gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopline.client.connection import ServerConnection, segment
from loopline.client.staging import upload_frame
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.promotion import PromotionRefused, PromotionReport
from loopline.core.registry import Evaluation
from loopline.core.wire import decode
from loopline.services.promotion import PolicyDocument

if TYPE_CHECKING:
    import pandas as pd


def _no_trust(trust: bool) -> None:
    if trust:
        raise InvalidInput(
            "a server never loads a pickled (python_function) model for a client: evaluate or "
            "promote such a model where the store is, with trust=True"
        )


def _version(name: str, version: int) -> str:
    return f"/models/{segment(name)}/versions/{segment(version)}"


class RemotePromotionService:
    """The server's evaluations and promotion gates, as the token's owner."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal

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
        _no_trust(trust)
        body = {
            "uri": uri, "upload_id": upload_frame(self._connection, data), "target": target, "task": task,
            "slices": list(slices), "dataset_name": dataset_name,
        }  # fmt: skip
        return decode(Evaluation, self._connection.call("POST", "/evaluations", json=body))

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
        _no_trust(trust)
        document = policy if policy is None or isinstance(policy, Mapping) else policy.to_dict()
        body = {
            "alias": alias, "policy": document, "force_reason": force_reason, "target": target, "task": task,
            "baseline": baseline, "upload_id": None if data is None else upload_frame(self._connection, data),
        }  # fmt: skip
        try:
            found = self._connection.call("POST", f"{_version(name, version)}/promote", json=body)
        except PromotionRefused as refused:
            report = refused.report
            raise PromotionRefused(
                report if isinstance(report, PromotionReport) else PromotionReport.from_dict(report)
            ) from None
        return PromotionReport.from_dict(found)

    def evaluations(self, name: str, version: int) -> list[Evaluation]:
        found = self._connection.pages(f"{_version(name, version)}/evaluations")
        return [decode(Evaluation, e) for e in found]

    def evaluation_plot(self, name: str, version: int, evaluation_id: int, plot: str) -> bytes:
        route = f"{_version(name, version)}/evaluations/{segment(evaluation_id)}/plots/{segment(plot)}"
        return self._connection.content(route)

    def model_card(self, name: str, version: int, *, html: bool = False) -> str:
        return self._connection.text(f"{_version(name, version)}/card", {"html": html})
