"""``pdp config show``: the effective settings, where each comes from, secrets masked.

One line per variable of :data:`pdp.config.VARIABLES`: its name, its effective
value (after parsing: the default when unset) and its source, ``env``, ``file`` or
``default``. Secrets are printed as ``***`` (a URL keeps all but its password).
Every value is checked as the service would check it, so a configuration this
command shows is one the service starts with (key files and JWKS URLs are not
opened).
"""

from __future__ import annotations

import json

import click

from pdp.config import CONFIG_VARIABLE, VARIABLES, Settings, load_environment, mask

#: Where each token variable lands in :class:`pdp.api.tokens.TokenSettings`.
_TOKEN_ATTRIBUTES = {
    "PDP_JWKS": "jwks", "PDP_JWT_HS_SECRET": "hs_secret", "PDP_JWT_ISSUER": "issuer",
    "PDP_JWT_AUDIENCE": "audience", "PDP_JWT_LEEWAY": "leeway",
    "PDP_JWT_ALGORITHMS": "algorithms", "PDP_JWT_REQUIRED_CLAIMS": "required_claims",
    "PDP_JWKS_TIMEOUT": "jwks_timeout", "PDP_JWKS_REFRESH_INTERVAL": "jwks_refresh_interval",
    "PDP_JWKS_CACHE_TTL": "jwks_cache_ttl", "PDP_JWKS_MAX_BYTES": "jwks_max_bytes",
}
_SETTINGS_ATTRIBUTES = {"PDP_AUDIT_FLUSH_INTERVAL": "audit_flush_interval_ms"}
#: What an unset optional value means.
_UNSET = {"PDP_PUBLIC_URL": "(the request's host)", "PDP_JWKS": "(none)",
          "PDP_JWT_HS_SECRET": "(none)", "PDP_JWT_ISSUER": "(any)",
          "PDP_JWT_AUDIENCE": "(none)", "PDP_JWT_ALGORITHMS": "(the keys')",
          "PDP_AUDIT_REDACT_CLAIMS": "(none)"}


def effective(environ=None) -> tuple[str | None, list[tuple[str, str, str]]]:
    """The config file's path and ``(variable, value fit to print, source)`` rows."""
    import os

    from pdp.api.context import ApiOptions
    from pdp.api.tokens import TokenSettings

    merged = load_environment(os.environ if environ is None else environ)
    settings = Settings.from_env(merged)
    with merged.explained():
        tokens = TokenSettings.from_env(merged)
    options = ApiOptions.from_settings(settings)
    rows = []
    for variable in VARIABLES:
        name = variable.name
        if name in _TOKEN_ATTRIBUTES:
            value = getattr(tokens, _TOKEN_ATTRIBUTES[name])
        else:
            attribute = _SETTINGS_ATTRIBUTES.get(name, variable.key)
            value = getattr(settings, attribute)
            if value is None and attribute == "poll_interval":
                value = settings.effective_poll_interval
            elif value is None and hasattr(options, attribute):
                value = getattr(options, attribute)
        shown = _render(name, value) if value is None or value == () else mask(
            name, _render(name, value))
        rows.append((name, shown, merged.source(name)))
    return merged.path, rows


def _render(name: str, value: object) -> str:
    if value is None or value == ():
        return _UNSET.get(name, "(none)")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


@click.group()
def config() -> None:
    """The configuration: environment variables over the config file (--config)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def show(as_json: bool) -> None:
    """Print the effective settings, their source (env, file or default), secrets
    masked as ***."""
    path, rows = effective()
    if as_json:
        click.echo(json.dumps({
            "config_file": path,
            "settings": {name: {"value": value, "source": source}
                         for name, value, source in rows}}, indent=2))
        return
    click.echo(f"# {CONFIG_VARIABLE}: {path or '(none)'}")
    width = max(len(name) for name, _, _ in rows)
    value_width = min(max(len(value) for _, value, _ in rows), 60)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {value:<{value_width}}  {source}")
