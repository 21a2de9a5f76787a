"""What every pdp command shares: settings, the database, the acting user, and
reporting :class:`~pdp.errors.PdpError` on stderr with a meaningful exit status."""

from __future__ import annotations

import getpass

import click

from pdp.config import Settings
from pdp.errors import PdpError, PolicyError

#: Exit status of a refused request or invalid input (click uses 2 for usage errors).
EXIT_REFUSED = 1


class PdpGroup(click.Group):
    """A group that turns any :class:`PdpError` from a sub-command into a message on
    stderr and exit status 1 (a :class:`PolicyError` prints every diagnostic)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PolicyError as exc:
            report_policy_error(exc)
            ctx.exit(EXIT_REFUSED)
        except PdpError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_REFUSED)


def report_policy_error(exc: PolicyError) -> None:
    for diagnostic in exc.diagnostics:
        click.echo(diagnostic.render(), err=True)
    click.echo(exc.message, err=True)


def get_settings(ctx: click.Context | None = None) -> Settings:
    """The settings of this run: ``obj`` of the root context when it is a
    :class:`Settings` (tests pass one), else built once from the environment."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.from_env()
    return root.obj


def open_database(ctx: click.Context | None = None):
    """The store named by the settings, disposed of when the command ends."""
    from pdp.store.db import Database

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    database = root.meta.get("pdp.database")
    if database is None:
        database = Database(get_settings(ctx).database_url)
        root.meta["pdp.database"] = database
        root.call_on_close(database.dispose)
    return database


def cli_actor() -> str:
    """Who acts from the command line, as recorded in the store: ``cli:<user>``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"cli:{user}"
