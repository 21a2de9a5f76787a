"""One typed settings object, built once from the environment.

:meth:`Settings.from_env` reads the ``PDP_*`` variables, checks them and returns a
frozen :class:`Settings`; everything else receives that object (or the values it
needs) as arguments and never reads the environment itself. The operator's
reference, with every ``PDP_*`` variable of every module, is the table in
``docs/operations.md`` (``tests/test_operations_doc.py`` keeps it complete).

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
``PDP_MAX_BATCH_CHECKS`` 100                       most checks in one ``POST /v1/decide/batch``
                                                   (400 naming ``checks`` beyond)
``PDP_LOG_LEVEL``      INFO                        DEBUG, INFO, WARNING, ERROR or CRITICAL
``PDP_BIND``           127.0.0.1:8080              ``pdp serve``: HOST:PORT to listen on
``PDP_WORKERS``        2                           ``pdp serve``: gunicorn worker processes
``PDP_THREADS``        4                           ``pdp serve``: threads per worker
``PDP_PUBLIC_URL``     (the request's host)        the service's public base URL, for the
                                                   AuthZEN metadata document
``PDP_GATEWAY_SUBJECT_HEADERS`` 0                  1: ``/v1/authz/http`` answers an allow
                                                   with ``X-PDP-Subject`` for the upstream
``PDP_AUDIT_MODE``     async                       the decision log: ``async``, ``durable``
                                                   (answer after the record is kept) or ``off``
``PDP_AUDIT_QUEUE_SIZE`` 10000                     records buffered in memory per process
``PDP_AUDIT_FLUSH_INTERVAL`` 200                   milliseconds between batch writes (async)
``PDP_AUDIT_BATCH_SIZE`` 500                       most records in one insert transaction
``PDP_AUDIT_SPILL_DIR`` ``var/audit-spill``        where records wait when the store is down
``PDP_AUDIT_REDACT_CLAIMS`` (none)                 claims recorded as ``"[redacted]"``
=====================  ==========================  ==========================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

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
    #: Most checks in one batch decision request; ``None`` = ApiOptions' default (100).
    max_batch_checks: int | None = None
    #: Level of the JSON logs on stdout (:mod:`pdp.api.logging`).
    log_level: str = "INFO"
    #: ``pdp serve``: where to listen, how many worker processes and threads each.
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    threads: int = 4
    #: The service's public base URL (``https://pdp.example.com``) for the AuthZEN
    #: metadata; ``None``: taken from each request's scheme and host.
    public_url: str | None = None
    #: The gateway endpoint adds ``X-PDP-Subject`` (the subject's ``sub``) to an allow.
    gateway_subject_headers: bool = False
    #: The decision log (:mod:`pdp.audit`): ``async``, ``durable`` or ``off``.
    audit_mode: str = "async"
    #: Records buffered in memory per process before they spill to disk.
    audit_queue_size: int = 10_000
    #: Milliseconds between two batch writes in ``async`` mode.
    audit_flush_interval_ms: int = 200
    #: Most records written in one transaction.
    audit_batch_size: int = 500
    #: Where records are spilled when the store is slow or down (relative to the
    #: working directory).
    audit_spill_dir: str = "var/audit-spill"
    #: Names of claims whose values are recorded as ``"[redacted]"``.
    audit_redact_claims: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``PDP_*`` variables; unset or empty means the default."""
        return cls(
            database_url=_str(environ, "PDP_DATABASE_URL", DEFAULT_DATABASE_URL),
            poll_interval=_seconds(environ, "PDP_POLL_INTERVAL"),
            max_data_bytes=_positive_int(environ, "PDP_MAX_DATA_BYTES", DEFAULT_MAX_DATA_BYTES),
            max_body_bytes=_positive_int(environ, "PDP_MAX_BODY_BYTES", None),
            max_publish_bytes=_positive_int(environ, "PDP_MAX_PUBLISH_BYTES", None),
            max_json_depth=_positive_int(environ, "PDP_MAX_JSON_DEPTH", None),
            max_policy_files=_positive_int(environ, "PDP_MAX_POLICY_FILES", None),
            auth_cache_ttl=_seconds(environ, "PDP_AUTH_CACHE_TTL", zero_ok=True),
            max_batch_checks=_positive_int(environ, "PDP_MAX_BATCH_CHECKS", None),
            log_level=_log_level(environ),
            bind=_str(environ, "PDP_BIND", "127.0.0.1:8080"),
            workers=_positive_int(environ, "PDP_WORKERS", 2),
            threads=_positive_int(environ, "PDP_THREADS", 4),
            public_url=_public_url(environ),
            gateway_subject_headers=_flag(environ, "PDP_GATEWAY_SUBJECT_HEADERS"),
            audit_mode=_audit_mode(environ),
            audit_queue_size=_positive_int(environ, "PDP_AUDIT_QUEUE_SIZE", 10_000),
            audit_flush_interval_ms=_positive_int(environ, "PDP_AUDIT_FLUSH_INTERVAL", 200),
            audit_batch_size=_positive_int(environ, "PDP_AUDIT_BATCH_SIZE", 500),
            audit_spill_dir=_str(environ, "PDP_AUDIT_SPILL_DIR", "var/audit-spill"),
            audit_redact_claims=_names(environ, "PDP_AUDIT_REDACT_CLAIMS"),
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


def _seconds(environ: Mapping[str, str], name: str, *, zero_ok: bool = False) -> float | None:
    """A finite number of seconds, positive (or zero when ``zero_ok``); unset: None."""
    value = _raw(environ, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not (number >= 0 if zero_ok else number > 0) or number == float("inf"):
        kind = "zero or a positive" if zero_ok else "a positive"
        raise ConfigError(f"{name} must be {kind} number of seconds, not {value!r}")
    return number


def _public_url(environ: Mapping[str, str]) -> str | None:
    """``PDP_PUBLIC_URL``: an absolute http(s) URL without query or fragment; no
    trailing slash."""
    value = _raw(environ, "PDP_PUBLIC_URL")
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port                               # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.query or parts.fragment or "?" in value or "#" in value
            or any(c.isspace() or ord(c) < 32 for c in value)):
        raise ConfigError("PDP_PUBLIC_URL must be an absolute http(s) URL without query "
                          f"or fragment, such as https://pdp.example.com, not {value!r}")
    return value.rstrip("/")


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = _raw(environ, name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {value!r}")


def _audit_mode(environ: Mapping[str, str]) -> str:
    value = _str(environ, "PDP_AUDIT_MODE", "async").lower()
    if value not in ("async", "durable", "off"):
        raise ConfigError(f"PDP_AUDIT_MODE must be async, durable or off, not {value!r}")
    return value


def _names(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of names (blanks ignored)."""
    value = _raw(environ, name)
    if value is None:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


def _log_level(environ: Mapping[str, str]) -> str:
    value = _str(environ, "PDP_LOG_LEVEL", "INFO").upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("PDP_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                          f"not {value!r}")
    return value


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
