"""The ``pdp`` command line (click).

``main`` is the root group; each concern adds its commands next to the resource
it manages: :mod:`pdp.cli.policy` (the ``policy`` group: check, test, fmt, eval,
compile), :mod:`pdp.cli.store` (``policy push|versions|activate|show|diff``,
``db``, ``keys``), :mod:`pdp.cli.token` (``token mint``), :mod:`pdp.cli.serve`
(``serve``), :mod:`pdp.cli.audit` (``audit query|export|verify|head|prune``).

Exit status: 0 success; 1 refused or invalid input (a policy error, a conflict,
something not found, a store that cannot be used); 2 a usage error. Every
:class:`~pdp.errors.PdpError` a command raises is reported here, on stderr:
a :class:`~pdp.errors.PolicyError` as its rendered diagnostics.
"""

from __future__ import annotations

import click

from pdp.cli._common import PdpGroup
from pdp.cli.audit import audit
from pdp.cli.policy import policy
from pdp.cli.serve import serve
from pdp.cli.store import db, keys
from pdp.cli.token import token


@click.group(cls=PdpGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pdp: a policy decision point."""


main.add_command(policy)
main.add_command(db)
main.add_command(keys)
main.add_command(token)
main.add_command(serve)
main.add_command(audit)

__all__ = ["main"]
