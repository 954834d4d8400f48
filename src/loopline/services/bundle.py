"""`Services`: one of each service, all acting as the same principal."""

from __future__ import annotations

from abc import ABC, abstractmethod

from loopline.core.entities import Principal
from loopline.services.access import Access, Audit
from loopline.services.automation import Automation
from loopline.services.datasets import Datasets
from loopline.services.deployments import Deployments
from loopline.services.features import Features
from loopline.services.lineage import Lineage
from loopline.services.loops import Loops
from loopline.services.monitors import Monitors
from loopline.services.privacy import Privacy
from loopline.services.promotion import Promotion
from loopline.services.registry import Registry
from loopline.services.storage import Storage
from loopline.services.tracking import Tracking


class Services(ABC):
    """What every interface works with, on a local store or through a server alike. Each
    service is built on first use, so a command pays only for what it touches."""

    @property
    @abstractmethod
    def principal(self) -> Principal:
        """Who every service of the bundle acts as."""

    @property
    @abstractmethod
    def tracking(self) -> Tracking: ...

    @property
    @abstractmethod
    def registry(self) -> Registry: ...

    @property
    @abstractmethod
    def promotion(self) -> Promotion: ...

    @property
    @abstractmethod
    def datasets(self) -> Datasets: ...

    @property
    @abstractmethod
    def deployments(self) -> Deployments: ...

    @property
    @abstractmethod
    def features(self) -> Features:
        """The feature store: entities, feature views, training sets, online values."""

    @property
    @abstractmethod
    def monitors(self) -> Monitors: ...

    @property
    @abstractmethod
    def automation(self) -> Automation: ...

    @property
    @abstractmethod
    def loops(self) -> Loops: ...

    @property
    @abstractmethod
    def access(self) -> Access: ...

    @property
    @abstractmethod
    def audit(self) -> Audit: ...

    @property
    @abstractmethod
    def lineage(self) -> Lineage: ...

    @property
    @abstractmethod
    def storage(self) -> Storage:
        """The retention policy and garbage collection (administrators only)."""

    @property
    @abstractmethod
    def privacy(self) -> Privacy:
        """Erasure of one entity's personal data (administrators only)."""

    @abstractmethod
    @abstractmethod
    def close(self) -> None:
        """Release what the bundle holds (a store's connections, an HTTP client)."""
