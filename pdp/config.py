"""One typed settings object, built once from the environment and the config file.

:meth:`Settings.from_env` reads the ``PDP_*`` variables, checks them and returns a
frozen :class:`Settings`; everything else receives that object (or the values it
needs) as arguments and never reads the environment itself. The operator's
reference, with every ``PDP_*`` variable of every module, is the table in
``docs/operations.md`` (``tests/test_operations_doc.py`` keeps it complete).

**The config file.** ``PDP_CONFIG`` (or ``pdp --config PATH``) names an optional
TOML file. Its keys are the variable names without ``PDP_``, in lower case
(``database_url``, ``jwt_issuer``, ``audit_mode``); numbers are TOML numbers,
flags TOML booleans, lists TOML arrays of strings or comma-separated strings::

    database_url = "postgresql+psycopg://pdp@db.internal/pdp"
    workers = 4
    audit_mode = "durable"
    jwt_issuer = ["https://idp.example.com"]

:func:`load_environment` reads it and returns one merged view, the environment
over the file (a variable set to a non-empty value wins; unset or empty leaves
the file's value), in the environment's own string form. Both
:meth:`Settings.from_env` and :meth:`pdp.api.tokens.TokenSettings.from_env`
consume that view, so every value has one parser, and a bad value is reported
the same way wherever it came from (with the file's key and line when it came
from the file). An unknown key (with a did-you-mean), a wrong TOML type, an
unreadable or malformed file are each a :class:`ConfigError`. :data:`VARIABLES`
lists the variables the file may set; ``PDP_DEV_MODE`` and ``PDP_CONFIG`` itself
are environment only. Secrets (:attr:`Variable.secret`) are never printed, in
errors either: :func:`mask` renders a value for display (``pdp config show``).

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
``PDP_AUDIT_SPILL_MAX_MB`` (none)                  the most the spill files may hold (MiB)
``PDP_AUDIT_REDACT_CLAIMS`` (none)                 claims recorded as ``"[redacted]"``
``PDP_CONSOLE_SESSION_TTL`` 28800                  seconds a console sign-in lasts (absolute)
``PDP_TRUSTED_PROXIES`` 0                          reverse proxies in front of pdp whose
                                                   ``X-Forwarded-For/-Proto/-Host`` are believed
``PDP_CONFIG``         (none)                      a TOML config file (see above); the
                                                   environment overrides it
=====================  ==========================  ==========================================
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pdp.errors import PdpError

DEFAULT_DATABASE_URL = "sqlite:///var/pdp.db"
#: Largest total size of a policy set's reference data (UTF-8 bytes): the engine's limit.
DEFAULT_MAX_DATA_BYTES = 16 * 1024 * 1024


class ConfigError(PdpError):
    """A variable (or config file key) with a value pdp cannot use, or a config file
    pdp cannot read."""

    code = "config_error"


# --------------------------------------------------------------------------- the file

#: The variable that names the config file (environment only).
CONFIG_VARIABLE = "PDP_CONFIG"


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``PDP_*`` setting the config file may hold too."""

    name: str
    #: The TOML type the file must use: ``str``, ``int``, ``number``, ``bool``, ``list``.
    kind: str
    #: Never printed: ``"value"`` (all of it) or ``"url"`` (a URL's password and
    #: secret-looking query values); see :func:`mask`.
    secret: str | None = None

    @property
    def key(self) -> str:
        """Its name in the config file: ``PDP_JWT_ISSUER`` → ``jwt_issuer``."""
        return self.name.removeprefix("PDP_").lower()


#: Every variable the file may set, in the order of the table above (then the
#: end-user token ones of :class:`pdp.api.tokens.TokenSettings`).
VARIABLES: tuple[Variable, ...] = (
    Variable("PDP_DATABASE_URL", "str", secret="url"),
    Variable("PDP_POLL_INTERVAL", "number"),
    Variable("PDP_MAX_DATA_BYTES", "int"),
    Variable("PDP_MAX_BODY_BYTES", "int"),
    Variable("PDP_MAX_PUBLISH_BYTES", "int"),
    Variable("PDP_MAX_JSON_DEPTH", "int"),
    Variable("PDP_MAX_POLICY_FILES", "int"),
    Variable("PDP_AUTH_CACHE_TTL", "number"),
    Variable("PDP_MAX_BATCH_CHECKS", "int"),
    Variable("PDP_LOG_LEVEL", "str"),
    Variable("PDP_BIND", "str"),
    Variable("PDP_WORKERS", "int"),
    Variable("PDP_THREADS", "int"),
    Variable("PDP_PUBLIC_URL", "str"),
    Variable("PDP_GATEWAY_SUBJECT_HEADERS", "bool"),
    Variable("PDP_AUDIT_MODE", "str"),
    Variable("PDP_AUDIT_QUEUE_SIZE", "int"),
    Variable("PDP_AUDIT_FLUSH_INTERVAL", "int"),
    Variable("PDP_AUDIT_BATCH_SIZE", "int"),
    Variable("PDP_AUDIT_SPILL_DIR", "str"),
    Variable("PDP_AUDIT_SPILL_MAX_MB", "int"),
    Variable("PDP_AUDIT_REDACT_CLAIMS", "list"),
    Variable("PDP_CONSOLE_SESSION_TTL", "number"),
    Variable("PDP_TRUSTED_PROXIES", "int"),
    Variable("PDP_JWKS", "list", secret="url"),
    Variable("PDP_JWT_HS_SECRET", "str", secret="value"),
    Variable("PDP_JWT_ISSUER", "list"),
    Variable("PDP_JWT_AUDIENCE", "list"),
    Variable("PDP_JWT_LEEWAY", "number"),
    Variable("PDP_JWT_ALGORITHMS", "list"),
    Variable("PDP_JWT_REQUIRED_CLAIMS", "list"),
    Variable("PDP_JWKS_TIMEOUT", "number"),
    Variable("PDP_JWKS_REFRESH_INTERVAL", "number"),
    Variable("PDP_JWKS_CACHE_TTL", "number"),
    Variable("PDP_JWKS_MAX_BYTES", "int"),
)
_BY_KEY = {v.key: v for v in VARIABLES}
_BY_NAME = {v.name: v for v in VARIABLES}
#: Variables that are never read from the file, and why.
_ENVIRONMENT_ONLY = {
    "config": "the file is named by PDP_CONFIG (or pdp --config) in the environment",
    "dev_mode": "development mode is set in the environment only (PDP_DEV_MODE=1, "
                "pdp serve --dev)",
}
_TYPE_NAMES = {"str": "a string", "int": "a whole number (a TOML integer)",
               "number": "a number", "bool": "true or false",
               "list": "an array of strings or a comma-separated string"}


class Environment(Mapping[str, str]):
    """The environment over the config file: what :meth:`Settings.from_env` and
    :meth:`pdp.api.tokens.TokenSettings.from_env` read. Values are strings, as in
    the environment; :meth:`source` tells where each came from."""

    __slots__ = ("_values", "_sources", "path", "_lines")

    def __init__(self, values: Mapping[str, str], sources: Mapping[str, str],
                 path: str | None, lines: Mapping[str, int]):
        self._values = dict(values)
        self._sources = dict(sources)
        self.path = path
        self._lines = dict(lines)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def source(self, name: str) -> str:
        """``env``, ``file`` or ``default`` (unset or empty)."""
        value = self._values.get(name)
        if value is None or not value.strip():
            return "default"
        return self._sources.get(name, "env")

    def where(self, name: str) -> str | None:
        """``key in FILE, line N`` for a variable the file set, else ``None``."""
        if self.source(name) != "file":
            return None
        variable = _BY_NAME[name]
        return f"{variable.key} in {_at(self.path or '?', self._lines.get(variable.key))}"

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """A :class:`ConfigError` about a variable the file set says so (the key,
        file and line), never the value."""
        try:
            yield
        except ConfigError as exc:
            match = re.match(r"PDP_[A-Z0-9_]+", exc.message)
            where = self.where(match.group(0)) if match else None
            if where is None:
                raise
            raise ConfigError(f"{exc.message} (set as {where})") from None


def load_environment(environ: Mapping[str, str] = os.environ) -> Environment:
    """``environ`` over the config file ``environ["PDP_CONFIG"]`` names (if any).

    Raises :class:`ConfigError` for a file that cannot be read or parsed, an
    unknown key and a value of the wrong TOML type; the values themselves are
    checked by their one parser, in :meth:`Settings.from_env` and
    ``TokenSettings.from_env``. An :class:`Environment` is returned as it is.
    """
    if isinstance(environ, Environment):
        return environ
    values = dict(environ)
    path = (environ.get(CONFIG_VARIABLE) or "").strip() or None
    if path is None:
        return Environment(values, {}, None, {})
    text, document = _read(path)
    lines = {key: _line_of(text, key) for key in document}
    sources: dict[str, str] = {}
    for key, value in document.items():
        variable = _BY_KEY.get(key)
        if variable is None:
            raise ConfigError(_unknown(key, value, path, lines[key]))
        as_env = _as_env(variable, value, path, lines[key])
        current = environ.get(variable.name)
        if current is None or not current.strip():
            values[variable.name] = as_env
            sources[variable.name] = "file"
    return Environment(values, sources, path, lines)


def _read(path: str) -> tuple[str, dict]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"config file {path} (PDP_CONFIG) cannot be read: {reason}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {path}, line {line}: not UTF-8 text") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the problem and "(at line L, column C)", never text.
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _line_of(text: str, key: str) -> int | None:
    """The line where ``key`` is first assigned (``key =``, ``key.x =``, ``[key]``)."""
    quoted = rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
    pattern = re.compile(rf"^[ \t]*(?:{quoted}[ \t]*[=.]|\[\[?[ \t]*{quoted}[ \t]*[\].])",
                         re.M)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _at(path: str, line: int | None) -> str:
    return f"config file {path}" + (f", line {line}" if line else "")


def _unknown(key: str, value: object, path: str, line: int | None) -> str:
    message = f"{_at(path, line)}: unknown key {key}"
    if key in _ENVIRONMENT_ONLY:
        return f"{message}: {_ENVIRONMENT_ONLY[key]}"
    normalised = key.lower().removeprefix("pdp_")
    if normalised in _BY_KEY:
        guess = [normalised]
    else:
        guess = difflib.get_close_matches(normalised, list(_BY_KEY), n=1, cutoff=0.6)
    if guess:
        message += f"; did you mean {guess[0]}?"
    if isinstance(value, dict):
        message += (" (the file is flat: no tables, the keys are the variable names "
                    "without PDP_ in lower case, such as jwt_issuer)")
    return message


def _as_env(variable: Variable, value: object, path: str, line: int | None) -> str:
    """The file's value in the environment's string form; the wrong TOML type is an
    error naming the key (never the value)."""
    kind = variable.kind
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value) if isinstance(value, float) else str(value)
    if kind == "bool" and isinstance(value, bool):
        return "1" if value else "0"
    if kind == "list":
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            if any("," in item for item in value):
                raise ConfigError(f"{_at(path, line)}: an item of {variable.key} "
                                  "contains a comma, which separates items")
            return ",".join(value)
    raise ConfigError(f"{_at(path, line)}: {variable.key} must be {_TYPE_NAMES[kind]}, "
                      f"not {_toml_type(value)}")


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if all(isinstance(i, str) for i in value) else "an array of non-strings"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def mask(name: str, value: str) -> str:
    """``value`` of variable ``name`` fit to print: a secret as ``***``, a URL with
    its password as ``***`` (each item of a list)."""
    variable = _BY_NAME.get(name)
    if variable is None or variable.secret is None:
        return value
    if variable.secret == "value":
        return "***" if value else value
    if variable.kind == "list":
        return ",".join(_mask_url(item) for item in value.split(","))
    return _mask_url(value)


#: Query parameters whose values ``mask`` hides (``?password=…``, ``?access_token=…``).
_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|auth|sig|cred", re.I)


def _mask_url(value: str) -> str:
    """The URL with the password of its user info (``user:***@host``) and the values
    of secret-looking query parameters (``password=***``) hidden. The user info ends
    at the last ``@`` (a password may hold ``/`` or ``@``), so a ``@`` further on may
    hide more than the password, never less."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*://)(.*)\Z", value, re.S)
    if match is None:
        return value
    scheme, rest = match.groups()
    userinfo, at, host = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{host}"
    base, question, query = rest.partition("?")
    if question:
        query = "&".join(
            f"{name}=***" if sep and _SECRET_PARAMETER.search(name) else f"{name}{sep}{val}"
            for name, sep, val in (part.partition("=") for part in query.split("&")))
    return f"{scheme}{base}{question}{query}"


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
    #: The most the spill files may hold together, in MiB (``None``: no limit
    #: but the disk); past it, decisions that cannot be recorded get a 503.
    audit_spill_max_mb: int | None = None
    #: Names of claims whose values are recorded as ``"[redacted]"``.
    audit_redact_claims: tuple[str, ...] = ()
    #: Seconds a console session lasts from sign-in (:mod:`pdp.service.sessions`).
    console_session_ttl: float = 8 * 3600
    #: Proxies in front of pdp, each adding one ``X-Forwarded-*`` hop that is
    #: believed (client address, scheme — hence ``Secure`` cookies —, host); 0: none.
    trusted_proxies: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``PDP_*`` variables over the config file ``PDP_CONFIG``
        names (:func:`load_environment`); unset or empty means the default."""
        environ = load_environment(environ)
        with environ.explained():
            return cls._from(environ)

    @classmethod
    def _from(cls, environ: Mapping[str, str]) -> Settings:
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
            audit_spill_max_mb=_positive_int(environ, "PDP_AUDIT_SPILL_MAX_MB", None),
            audit_redact_claims=_names(environ, "PDP_AUDIT_REDACT_CLAIMS"),
            console_session_ttl=_seconds(environ, "PDP_CONSOLE_SESSION_TTL") or 8 * 3600,
            trusted_proxies=_count(environ, "PDP_TRUSTED_PROXIES"),
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


def _count(environ: Mapping[str, str], name: str) -> int:
    """A whole number, zero or more; unset: 0."""
    value = _raw(environ, name)
    if value is None:
        return 0
    if not value.isascii() or not value.isdigit() or int(value) > 16:
        raise ConfigError(f"{name} must be a whole number from 0 to 16, not {value!r}")
    return int(value)


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
