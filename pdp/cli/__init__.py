"""The ``pdp`` command line (click).

``main`` is the root group; each concern adds its commands next to the resource
it manages: :mod:`pdp.cli.policy` (the ``policy`` group: check, test, fmt, eval,
compile), :mod:`pdp.cli.store` (``policy push|versions|activate|show|diff``,
``db``, ``keys``), :mod:`pdp.cli.token` (``token mint``), :mod:`pdp.cli.serve`
(``serve``), :mod:`pdp.cli.audit` (``audit query|export|verify|head|prune``),
:mod:`pdp.cli.config` (``config show``).

``--config PATH`` (before the command: ``pdp --config pdp.toml serve``) names the
config file: it sets ``PDP_CONFIG`` to the absolute path, in this process's
environment, so the command and ``pdp serve``'s gunicorn workers read it.

Exit status: 0 success; 1 refused or invalid input (a policy error, a conflict,
something not found, a store that cannot be used); 2 a usage error. Every
:class:`~pdp.errors.PdpError` a command raises is reported here, on stderr:
a :class:`~pdp.errors.PolicyError` as its rendered diagnostics.
"""

from __future__ import annotations

import os

import click

from pdp.cli._common import PdpGroup
from pdp.cli.audit import audit
from pdp.cli.config import config
from pdp.cli.policy import policy
from pdp.cli.serve import serve
from pdp.cli.store import db, keys
from pdp.cli.token import token


@click.group(cls=PdpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              type=click.Path(dir_okay=False),
              help="The TOML config file (sets PDP_CONFIG); the environment's PDP_* "
                   "variables override it.")
def main(config_path: str | None) -> None:
    """pdp: a policy decision point."""
    if config_path is not None:
        # In the environment, so that gunicorn's workers (pdp serve) inherit it.
        os.environ["PDP_CONFIG"] = os.path.abspath(config_path)


main.add_command(policy)
main.add_command(db)
main.add_command(keys)
main.add_command(token)
main.add_command(serve)
main.add_command(audit)
main.add_command(config)

__all__ = ["main"]
