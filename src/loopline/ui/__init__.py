"""The web UI: pages over the services, served by `loopline ui` and at `/` of `loopline server`.

Pages are rendered on the server (Jinja2, escaped by default) from the same services as the
CLI and the REST API; charts fetch downsampled series from `/api/v1` and draw them with the
plotly.js that ships inside the `plotly` package. No inline script: a Content-Security-Policy
forbids it.
"""

from loopline.ui.app import mount_ui

__all__ = ["mount_ui"]
