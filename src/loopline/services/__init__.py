"""The services' interfaces, one Protocol each, and the `Services` bundle that holds one of each.

The local services (on the store) and the HTTP client (through a server) both implement
these Protocols; mypy checks both. Interfaces (the SDK, the CLI, the server, the UI) and
other services depend on these, never on a concrete service."""

from loopline.services.access import Access, Audit
from loopline.services.automation import Automation
from loopline.services.bundle import Services
from loopline.services.datasets import Datasets, DataSource, Progress
from loopline.services.deployments import Deployments
from loopline.services.features import Applied, EntityRows, Features, Materialized
from loopline.services.lineage import Lineage
from loopline.services.loops import Loops
from loopline.services.monitors import Monitors
from loopline.services.privacy import Privacy
from loopline.services.promotion import Promotion
from loopline.services.registry import Registry
from loopline.services.storage import Storage
from loopline.services.tracking import Tracking

__all__ = [
    "Access",
    "Applied",
    "Audit",
    "Automation",
    "DataSource",
    "Datasets",
    "Deployments",
    "EntityRows",
    "Features",
    "Lineage",
    "Loops",
    "Materialized",
    "Monitors",
    "Privacy",
    "Progress",
    "Promotion",
    "Registry",
    "Services",
    "Storage",
    "Tracking",
]
