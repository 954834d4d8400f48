"""The composition root: settings in; stores, blob stores and services out.

`open_services(settings)` is the one function that builds the services every interface
uses: on the local store as its owner, or through the server `settings.uri` as the token's
owner. Submodules keep importing settings cheap: `wiring.settings` (the typed settings),
`wiring.backends` (URI schemes to store implementations), `wiring.local` (the services over
a store, with their collaborators injected)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.services import Services
    from loopline.wiring.settings import Settings


def open_services(settings: Settings) -> Services:
    """Every service, through the server `settings.uri` when one is set, else on the local
    store acting as its owner. `close()` the bundle when done."""
    if settings.uri:
        from loopline.client.services import RemoteServices

        return RemoteServices.connect(settings.uri, settings.token, settings.tls_ca)
    from loopline.wiring.backends import local_owner, open_backends
    from loopline.wiring.local import LocalServices

    return LocalServices(open_backends(settings), local_owner(), owns_backends=True)
