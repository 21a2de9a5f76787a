"""The console: web pages for auditors and policy owners, served at ``/console``.

Server-rendered HTML (Jinja, autoescaped) with no inline script and no third-party
asset: everything the pages need is under ``/console/static``. One blueprint,
``console``, whose pages are split by concern:

* :mod:`.session` — sign-in with an ``auditor`` or ``admin`` key, the session
  cookie, sign-out, CSRF protection of every form, the security headers
  (Content-Security-Policy and friends), HTML error pages, :func:`.session.page`;
* :mod:`.overview` — ``/console/``: allow/deny over time, top denied, errors by
  code, the audit chain's state;
* :mod:`.decisions` — ``/console/decisions[/…]``: the decision log with filters,
  keyset paging and export; one decision beside the policies that decided it;
* :mod:`.policies` — ``/console/policies[/…]``: sets, versions, source, diff,
  activation and rollback with a confirmation step.
"""

from __future__ import annotations

from pdp.api.console import decisions, overview, policies  # noqa: F401  (register pages)
from pdp.api.console.session import bp

__all__ = ["bp"]
