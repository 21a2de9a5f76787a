"""``pdp token mint``: development tokens for trying pdp out.

Signs with the development key in ``var/dev-signing-key.json`` (an EC P-256 private
JWK created on first use) and keeps its public JWKS in ``var/dev-jwks.json``, so a
development service verifies the tokens with ``PDP_JWKS=var/dev-jwks.json``.
Refuses unless ``PDP_DEV_MODE=1`` or ``--dev``: production tokens come from the
identity provider, never from pdp. The logic lives in :mod:`pdp.api.tokens`.
"""

from __future__ import annotations

import os

import click

from pdp.cli._common import PdpGroup


@click.group(cls=PdpGroup)
def token() -> None:
    """End-user tokens (development only)."""


@token.command("mint")
@click.option("--sub", required=True, help="The subject (end user) the token is for.")
@click.option("--roles", default="", metavar="R1,R2", help="Comma-separated roles (claim 'roles').")
@click.option("--claim", "claims", multiple=True, metavar="NAME=VALUE",
              help="Another claim; VALUE is JSON when it parses (3, true, [\"a\"]), else "
                   "a string. Repeatable; may override sub, roles, exp, iss, aud….")
@click.option("--ttl", type=click.IntRange(min=1), default=3600, show_default=True,
              help="Seconds until the token expires.")
@click.option("--iss", "issuer", metavar="ISSUER",
              help="Claim 'iss' (default: the first of PDP_JWT_ISSUER, if set).")
@click.option("--aud", "audience", metavar="AUDIENCE",
              help="Claim 'aud' (default: the first of PDP_JWT_AUDIENCE, if set).")
@click.option("--var-dir", default="var", show_default=True, type=click.Path(file_okay=False),
              help="Where the development key and JWKS are kept.")
@click.option("--dev", is_flag=True, help="Allow minting without PDP_DEV_MODE=1.")
def mint(sub: str, roles: str, claims: tuple[str, ...], ttl: int, issuer: str | None,
         audience: str | None, var_dir: str, dev: bool) -> None:
    """Print a signed development token for --sub (the token alone, on stdout)."""
    from pdp.api.tokens import mint_dev_token, parse_claim
    from pdp.config import load_environment

    extra = dict(parse_claim(text) for text in claims)
    click.echo(mint_dev_token(
        sub=sub, roles=[r.strip() for r in roles.split(",") if r.strip()], claims=extra,
        ttl=ttl, issuer=issuer, audience=audience, var_dir=var_dir, dev=dev,
        environ=load_environment(os.environ)))         # the config file's issuer too
