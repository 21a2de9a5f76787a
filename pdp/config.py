"""One typed settings object, built once from the environment.

:meth:`Settings.from_env` reads the ``PDP_*`` variables, checks them and returns a
frozen :class:`Settings`; everything else receives that object (or the values it
needs) as arguments and never reads the environment itself.

=====================  ==========================  ==========================================
variable               default                     meaning
=====================  ==========================  ==========================================
``PDP_DATABASE_URL``   ``sqlite:///var/pdp.db``    the store: a SQLite file (relative to the
                                                   working directory) or
                                                   ``postgresql+psycopg://user@host/db``
``PDP_POLL_INTERVAL``  1 (SQLite), 5 (PostgreSQL)  seconds between checks for a newly
                                                   activated policy version (on PostgreSQL
                                                   the fallback behind LISTEN/NOTIFY)
``PDP_MAX_DATA_BYTES`` 16777216                    largest total size of the reference data
                                                   (``data/**/*.json``) a policy set may publish
``PDP_MAX_BODY_BYTES`` 1048576                     largest HTTP request body (413 beyond)
``PDP_MAX_PUBLISH_BYTES`` see ApiOptions           largest body of a publish request
``PDP_MAX_JSON_DEPTH`` 32                          deepest JSON nesting in a request body
``PDP_MAX_POLICY_FILES`` 1000                      most files in one published policy set
``PDP_AUTH_CACHE_TTL`` 5                           seconds a caller's key lookup is cached
                                                   (0: no cache); bounds revocation delay
=====================  ==========================  ==========================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pdp.errors import PdpError

DEFAULT_DATABASE_URL = "sqlite:///var/pdp.db"
#: Largest total size of a policy set's reference data (UTF-8 bytes): the engine's limit.
DEFAULT_MAX_DATA_BYTES = 16 * 1024 * 1024


class ConfigError(PdpError):
    """An environment variable with a value pdp cannot use."""

    code = "config_error"


@dataclass(frozen=True, slots=True)
class Settings:
    #: SQLAlchemy URL of the store.
    database_url: str = DEFAULT_DATABASE_URL
    #: Seconds between polls for activations; ``None`` picks the backend default
    #: (see :meth:`effective_poll_interval`).
    poll_interval: float | None = None
    #: Largest total size of a policy set's reference data, in bytes (UTF-8).
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
    #: HTTP limits (see :class:`pdp.api.context.ApiOptions`); ``None`` = its default.
    max_body_bytes: int | None = None
    max_publish_bytes: int | None = None
    max_json_depth: int | None = None
    max_policy_files: int | None = None
    #: Seconds a caller's key lookup stays cached; 0 turns the cache off.
    auth_cache_ttl: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``PDP_*`` variables; unset or empty means the default."""
        return cls(
            database_url=_str(environ, "PDP_DATABASE_URL", DEFAULT_DATABASE_URL),
            poll_interval=_positive_float(environ, "PDP_POLL_INTERVAL"),
            max_data_bytes=_positive_int(environ, "PDP_MAX_DATA_BYTES", DEFAULT_MAX_DATA_BYTES),
            max_body_bytes=_positive_int(environ, "PDP_MAX_BODY_BYTES", None),
            max_publish_bytes=_positive_int(environ, "PDP_MAX_PUBLISH_BYTES", None),
            max_json_depth=_positive_int(environ, "PDP_MAX_JSON_DEPTH", None),
            max_policy_files=_positive_int(environ, "PDP_MAX_POLICY_FILES", None),
            auth_cache_ttl=_non_negative_float(environ, "PDP_AUTH_CACHE_TTL"),
        )

    @property
    def effective_poll_interval(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return default_poll_interval(self.database_url)


def default_poll_interval(database_url: str) -> float:
    """1 s on SQLite (polling is the only signal), 5 s on PostgreSQL (NOTIFY is)."""
    return 5.0 if database_url.startswith("postgresql") else 1.0


# --------------------------------------------------------------------------- parsing

def _raw(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _str(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(environ, name)
    return default if value is None else value


def _positive_float(environ: Mapping[str, str], name: str) -> float | None:
    value = _raw(environ, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return number


def _non_negative_float(environ: Mapping[str, str], name: str) -> float | None:
    value = _raw(environ, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ConfigError(f"{name} must be zero or a positive number of seconds, not {value!r}")
    return number


def _positive_int(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, not {value!r}")
    return number
