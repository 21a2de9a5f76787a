"""Commands on the store: ``pdp policy push|versions|activate|show|diff``,
``pdp db upgrade``, ``pdp keys create|list|revoke``.

The store is the one named by ``PDP_DATABASE_URL`` (default ``var/pdp.db``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import click

from pdp.cli._common import (
    EXIT_REFUSED,
    cli_actor,
    get_settings,
    open_database,
    report_policy_error,
)
from pdp.cli.policy import policy
from pdp.errors import PolicyError
from pdp.service import keys as key_service
from pdp.service import policies as policy_service
from pdp.store.keys import ROLES

_set_option = click.option("--set", "policy_set", default=policy_service.DEFAULT_SET,
                           show_default=True, metavar="S", help="The policy set.")


def _from_here(exc: PolicyError, directory: str) -> PolicyError:
    """``exc`` with file names as seen from the working directory (``DIR/x.policy``),
    as ``pdp policy check`` shows them."""
    return PolicyError([
        dataclasses.replace(d, file=Path(os.path.normpath(os.path.join(directory, d.file)))
                            .as_posix()) if d.file else d
        for d in exc.diagnostics])


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


# --------------------------------------------------------------------------- policy …

@policy.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_set_option
@click.option("--activate", is_flag=True, help="Also make the version active.")
@click.option("--base-version", type=click.IntRange(min=0), metavar="N",
              help="Refuse unless the latest version is N (0: the set is new).")
def push(directory: str, policy_set: str, activate: bool, base_version: int | None) -> None:
    """Publish the policy set in DIRECTORY as a new version.

    DIRECTORY holds **/*.policy files and data/**/*.json reference data. Nothing is
    stored unless every file compiles. The same content as the latest version
    publishes nothing (the latest version is reported as unchanged).
    """
    try:
        files = policy_service.read_policy_dir(directory)
        result = policy_service.publish(
            open_database(), files, policy_set=policy_set, published_by=cli_actor(),
            activate=activate, base_version=base_version,
            max_data_bytes=get_settings().max_data_bytes)
    except PolicyError as exc:
        report_policy_error(_from_here(exc, directory))
        raise SystemExit(EXIT_REFUSED) from None
    v = result.version
    if result.created:
        n = len(v.policy_ids)
        click.echo(f"published {v.policy_set} version {v.number} ({n} "
                   f"polic{'y' if n == 1 else 'ies'}, {v.content_hash})")
    else:
        click.echo(f"unchanged: {v.policy_set} version {v.number} has the same content")
    if result.activated:
        click.echo(f"activated {v.policy_set} version {v.number}")
    elif activate:
        click.echo(f"{v.policy_set} version {v.number} is already active")


@policy.command("versions")
@_set_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def versions(policy_set: str, as_json: bool) -> None:
    """List the versions of a policy set; the active one is marked with *."""
    found = policy_service.list_versions(open_database(), policy_set)
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in found], indent=2))
        return
    _table(["VERSION", "ACTIVE", "PUBLISHED", "BY", "POLICIES", "HASH"],
           [[str(v.number), "*" if v.active else "", _when(v.published_at), v.published_by,
             str(len(v.policy_ids)), v.content_hash[:19]] for v in found])


@policy.command("activate")
@click.argument("number", type=click.IntRange(min=1))
@_set_option
def activate(number: int, policy_set: str) -> None:
    """Make version NUMBER the active one (an older number rolls back)."""
    result = policy_service.activate(open_database(), number, policy_set=policy_set,
                                     activated_by=cli_actor())
    if not result.changed:
        click.echo(f"{policy_set} version {number} is already active")
    elif result.previous is None:
        click.echo(f"activated {policy_set} version {number}")
    else:
        click.echo(f"activated {policy_set} version {number} (was {result.previous})")


@policy.command("show")
@click.argument("number", type=click.IntRange(min=1))
@_set_option
@click.option("--file", "only", metavar="PATH", help="Print only this file, as stored.")
def show(number: int, policy_set: str, only: str | None) -> None:
    """Print version NUMBER: what it is, then its files."""
    found = policy_service.show_version(open_database(), number, policy_set)
    if only is not None:
        if only not in found.files:
            raise click.ClickException(
                f"{policy_set} version {number} has no file {only!r}")
        click.echo(found.files[only], nl=False)
        return
    v = found.version
    click.echo(f"policy set: {v.policy_set}")
    click.echo(f"version:    {v.number}{' (active)' if v.active else ''}")
    click.echo(f"published:  {_when(v.published_at)} by {v.published_by}")
    click.echo(f"hash:       {v.content_hash}")
    click.echo(f"policies:   {', '.join(v.policy_ids) or '-'}")
    for path, content in found.files.items():
        click.echo(f"\n==> {path} <==")
        click.echo(content, nl=not content.endswith("\n"))


@policy.command("diff")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@_set_option
def diff(old: int, new: int, policy_set: str) -> None:
    """Show what changed from version OLD to version NEW: a unified diff of the
    sources, then the policy ids added, removed and changed."""
    d = policy_service.diff_versions(open_database(), old, new, policy_set)
    if d.unified:
        click.echo(d.unified, nl=False)
        click.echo()
    for label, ids in (("added", d.added), ("removed", d.removed), ("changed", d.changed)):
        click.echo(f"policies {label + ':':8} {', '.join(ids) if ids else '-'}")


# --------------------------------------------------------------------------- db …

@click.group()
def db() -> None:
    """The database (PDP_DATABASE_URL)."""


@db.command("upgrade")
def upgrade() -> None:
    """Apply every migration the database lacks."""
    database = open_database()
    before = database.current_revision()
    database.upgrade()
    after = database.current_revision()
    where = database.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to revision {after}")


# --------------------------------------------------------------------------- keys …

@click.group()
def keys() -> None:
    """API keys of calling services."""


@keys.command("create")
@click.option("--name", required=True, help="A unique name for the calling service.")
@click.option("--role", "roles", required=True, multiple=True,
              type=click.Choice(ROLES), help="A role (repeatable).")
@click.option("--policy-set", "policy_sets", multiple=True, metavar="S",
              help="Restrict the key to this policy set (repeatable; default: all).")
@click.option("--trusted-claims", is_flag=True,
              help="Allow the key to pass subject claims without a token.")
def create(name: str, roles: tuple[str, ...], policy_sets: tuple[str, ...],
           trusted_claims: bool) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    new = key_service.create_key(open_database(), name=name, roles=roles,
                                 policy_sets=policy_sets or None,
                                 trusted_claims=trusted_claims, created_by=cli_actor())
    info = new.info
    click.echo(f"created key {info.name!r}: roles {', '.join(info.roles)}; policy sets "
               f"{', '.join(info.policy_sets) if info.policy_sets else 'all'}; trusted "
               f"claims {'yes' if info.trusted_claims else 'no'}")
    click.echo("the key is shown only now; store it safely:")
    click.echo(new.secret)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--active", "active_only", is_flag=True, help="Leave out revoked keys.")
def list_(as_json: bool, active_only: bool) -> None:
    """List API keys (never the keys themselves)."""
    found = key_service.list_keys(open_database(), include_revoked=not active_only)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in found], indent=2))
        return
    _table(["NAME", "ROLES", "POLICY SETS", "TRUSTED CLAIMS", "CREATED", "REVOKED"],
           [[k.name, ",".join(k.roles), ",".join(k.policy_sets) if k.policy_sets else "*",
             "yes" if k.trusted_claims else "no", _when(k.created_at), _when(k.revoked_at)]
            for k in found])


@keys.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the key NAME: it stops working at once."""
    info, changed = key_service.revoke_key(open_database(), name)
    if changed:
        click.echo(f"revoked key {info.name!r}")
    else:
        click.echo(f"key {info.name!r} was already revoked at {_when(info.revoked_at)}")
