"""A local stand-in for Sportradar's Auth0 token server and the Bettor Sense API.

Standard library only, and no Django, so it also runs as ``python -m bettorsense.sandbox``::

    from bettorsense.sandbox import Fault, SandboxServer, SandboxState

    state = SandboxState(token_lifetime=600, enforce_reuse=False, players=5000, seed=1)
    with SandboxServer(state, port=0) as server:       # port 0 picks a free port
        server.token_url                                # POST client credentials here
        server.api_url("integration")                   # .../ci/api/rg (audience mts-insight-tech-non-prod)
        state.add_fault(Fault(target="token", kind="status", status=503, times=1))

Default client: ``demo-client`` / ``demo-client-secret``, both audiences, bookmaker 123 /
sub-bookmaker 456. Module map: ``oauth`` (token endpoint), ``api`` (the two endpoints),
``profiles`` (generated data and which accounts 404), ``faults``, ``control`` (``/_sandbox/``),
``state``, ``server``, ``client`` (:class:`SandboxClient`), ``cli``.
"""

from bettorsense.sandbox.client import SandboxClient, SandboxControlError
from bettorsense.sandbox.faults import Fault
from bettorsense.sandbox.server import SandboxServer
from bettorsense.sandbox.state import (
    DEFAULT_BOOKMAKERS,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ClientRecord,
    IssuedToken,
    RecordedRequest,
    SandboxState,
)

__all__ = [
    "DEFAULT_BOOKMAKERS",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "ClientRecord",
    "Fault",
    "IssuedToken",
    "RecordedRequest",
    "SandboxClient",
    "SandboxControlError",
    "SandboxServer",
    "SandboxState",
]
