"""pdp-client: ask a pdp service for decisions, and enforce them.

::

    from pdp_client import PdpClient
    pdp = PdpClient("http://pdp:8080", api_key, timeout=1.0)
    if pdp.allowed("read", {"type": "document", "id": "d-42"}, token=user_token): ...

* :class:`PdpClient` — ``decide``, ``decide_batch``, ``allowed``; fails closed;
* :mod:`pdp_client.flask` — ``PdpFlask`` and ``@require`` (needs Flask);
* :mod:`pdp_client.wsgi` — ``PdpMiddleware`` for any WSGI framework.

Standard library only. Installed by itself (``pip install ./clients/python``) or
as part of pdp, where ``pdp.client`` re-exports it and adds the in-process
``EmbeddedDecider``. See docs/client.md.
"""

from pdp_client._client import (
    TOKEN_ERROR_CODES,
    Decision,
    PdpClient,
    PdpUnavailable,
    bearer_token,
    resource,
)
from pdp_client._enforce import DECISION_ID_HEADER

__all__ = ["DECISION_ID_HEADER", "TOKEN_ERROR_CODES", "Decision", "PdpClient",
           "PdpUnavailable", "bearer_token", "resource"]
__version__ = "0.1.0"
