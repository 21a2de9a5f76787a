"""Structured logs: one JSON object per line on stdout.

Every record has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``
and ``message``; records made while a request is served also carry its
``request_id``. :func:`init_app` logs one line per request (logger ``pdp.http``)
with ``method``, ``path`` (never the query string), ``route``, ``status``,
``duration_ms`` and ``caller`` (the API key's name, once authenticated), and
answers every request with an ``X-Request-Id`` header (the caller's own, when it
sent a sane one, else a new one).

Never logged: request headers (so neither ``Authorization`` nor ``X-PDP-Key``),
bodies (so no end-user token), query strings, API keys, tokens; in the path,
anything that looks like a JWT or a pdp key is replaced by ``[redacted]``. Messages of other
modules follow the same rule (``pdp.api.tokens`` names claims and codes only).

:func:`configure_logging` installs the handler on the root logger once per process
(``create_app`` and ``pdp serve`` call it; the level is ``PDP_LOG_LEVEL``);
gunicorn's own logger is routed to it by ``pdp.api.gunicorn_conf``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import re
import sys
import time
import traceback
from datetime import datetime, timezone

from flask import Flask, Response, g, has_request_context, request

#: Attributes of a ``LogRecord`` that are not extra fields.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}
#: Extra fields copied into the JSON object, in this order.
FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "caller",
          "remote_addr")
#: An ``X-Request-Id`` the caller may choose: short and printable.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Paths whose successful requests are logged at DEBUG only.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: What looks like a JWT or a pdp API key, wherever a caller put it.
_SECRET_LIKE = re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)?"
                          r"|pdp_[A-Za-z0-9_\-]{16,}")
MAX_PATH_CHARS = 512

http_log = logging.getLogger("pdp.http")


def safe_path(path: str) -> str:
    """``path`` as logged: JWT- and key-like parts replaced, at most 512 characters."""
    cleaned = _SECRET_LIKE.sub("[redacted]", path)
    return cleaned if len(cleaned) <= MAX_PATH_CHARS else cleaned[:MAX_PATH_CHARS] + "…"


#: Fields a record carries for the JSON line: ``FIELDS`` first, then other extras.
_KNOWN = _STANDARD | set(FIELDS)
_dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _c_dumps():
    """``_dumps`` for a flat dict of text, numbers and ``None`` (a log line's): the
    C encoder ``JSONEncoder.encode`` builds on every call, built once, with no
    circular-reference markers (a flat dict has none; a shared markers dict would
    not be thread-safe). The same text; ``None`` without the C accelerator."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:
        return None
    encode = make(None, str, encoder.encode_basestring, None, ": ", ", ", False, False, True)

    def dumps(entry: dict) -> str:
        return "".join(encode(entry, 0))

    return dumps


_dumps_flat = _c_dumps() or _dumps


_second: tuple[int, str] = (-1, "")


def _log_time(created: float) -> str:
    """``created`` as ``2026-11-29T13:29:39.263Z``: what
    ``datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")``
    gives (microseconds rounded half-even, then cut to milliseconds), with the
    date and time of day formatted once per second."""
    global _second
    whole = int(created)
    micros = round((created - whole) * 1e6)
    if whole < 0 or micros >= 1_000_000:
        return (datetime.fromtimestamp(created, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    second, text = _second
    if second != whole:
        text = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, text)
    return f"{text}.{micros // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """A record → one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _log_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attrs = vars(record)
        for name in FIELDS:
            value = attrs.get(name)
            if value is not None:
                entry[name] = value
        for name in [n for n in attrs if n not in _KNOWN]:
            value = attrs[name]
            if value is None or name in entry or name.startswith("_"):
                continue
            entry[name] = value if isinstance(value, (str, int, float, bool)) else repr(value)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return _dumps(entry)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (test capture replaces it)."""

    _pdp = True

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property                                    # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


#: The id of the request being served outside a Flask request context (the
#: ``POST /v1/decide`` fast path of :mod:`pdp.api.decide`).
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pdp_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to records made while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
            elif has_request_context():
                record.request_id = g.get("request_id")
        return True


def handler() -> logging.Handler:
    """A new stdout handler with the JSON formatter and the request-id filter."""
    h = _StdoutHandler()
    h.setFormatter(JsonFormatter())
    h.addFilter(RequestIdFilter())
    return h


def configure_logging(level: str = "INFO") -> None:
    """Log JSON lines to stdout at ``level`` from the root logger.

    Idempotent: a second call only changes the level. Handlers that others
    installed (pytest's capture, for one) are left alone.
    """
    root = logging.getLogger()
    if not any(getattr(h, "_pdp", False) for h in root.handlers):
        root.addHandler(handler())
    root.setLevel(level.upper())
    # Werkzeug's development server logs its own access lines; ours replace them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO whenever migrations run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- requests

def new_request_id() -> str:
    """32 hex digits shaped like a UUID version 4. Request ids are labels, not
    secrets: the process's PRNG (reseeded after fork) makes them without the system
    call of ``os.urandom``, which hands the interpreter to other threads."""
    value = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC << 60) | (0x4000 << 64) | (0x8 << 60)
    return f"{value:032x}"


def request_id_of(given: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is sane, else a new id."""
    return given if given and _REQUEST_ID.fullmatch(given) else new_request_id()


def _request_id() -> str:
    return request_id_of(request.headers.get("X-Request-Id", ""))


def _begin() -> None:
    g.request_id = _request_id()
    g.pdp_log_started = time.perf_counter()


def log_request(*, request_id: str, method: str, path: str, route: str | None, status: int,
                duration_ms: float | None, caller: str | None, remote_addr: str | None) -> None:
    """The one line logged per request (``pdp.http``)."""
    if status == 503 and path in QUIET_PATHS:
        level = logging.WARNING                 # not ready: expected while starting
    elif status >= 500:
        level = logging.ERROR
    elif path in QUIET_PATHS and status < 400:
        level = logging.DEBUG                   # probes and scrapes: every few seconds
    else:
        level = logging.INFO
    if not http_log.isEnabledFor(level):
        return
    path = safe_path(path)
    method = method[:16]
    fields = {"request_id": request_id, "method": method, "path": path, "route": route,
              "status": status, "duration_ms": duration_ms, "caller": caller,
              "remote_addr": remote_addr}
    handler = _sole_handler(level) if request_id is not None else None
    if handler is not None:
        _write_line(handler, level, (method, path, status), fields)
        return
    # makeRecord + handle is what Logger.log does, without looking up the caller's
    # frame (file, line, function: not part of the line).
    http_log.handle(http_log.makeRecord(
        http_log.name, level, __file__, 0, "%s %s %d", (method, path, status), None,
        "log_request", fields))


def _sole_handler(level: int) -> logging.Handler | None:
    """pdp's stdout handler when a ``pdp.http`` record at ``level`` would reach it and
    nothing else: no filter on the way, no other handler (pytest's capture, a
    user's own), the JSON formatter and the request-id filter as
    :func:`handler` made them. Then :func:`_write_line` writes what that handler
    would, without the ``LogRecord`` (its thread, process and caller lookups were
    ~90 k instructions of a ~550 k-instruction decision)."""
    found = None
    logger: logging.Logger | None = http_log
    while logger is not None:
        if logger.filters:
            return None
        for h in logger.handlers:
            if found is not None or type(h) is not _StdoutHandler:
                return None
            found = h
        if not logger.propagate:
            break
        logger = logger.parent
    if found is None or level < found.level or type(found.formatter) is not JsonFormatter:
        return None
    filters = found.filters
    if len(filters) != 1 or type(filters[0]) is not RequestIdFilter:
        return None
    return found


def _write_line(handler: logging.Handler, level: int, args: tuple, fields: dict) -> None:
    """The line :class:`JsonFormatter` makes of the record :func:`log_request` would
    log, written as ``StreamHandler.emit`` writes it (under the handler's lock,
    flushed)."""
    entry: dict[str, object] = {"time": _log_time(time.time()),
                                "level": logging.getLevelName(level),
                                "logger": http_log.name, "message": "%s %s %d" % args}
    for name in FIELDS:
        value = fields[name]
        if value is not None:
            entry[name] = value
    handler.acquire()
    try:
        handler.stream.write(_dumps_flat(entry) + handler.terminator)
        handler.flush()
    except Exception:
        handler.handleError(http_log.makeRecord(
            http_log.name, level, __file__, 0, "%s %s %d", args, None, "log_request", fields))
    finally:
        handler.release()


def _end(response: Response) -> Response:
    request_id = g.get("request_id") or _request_id()
    response.headers["X-Request-Id"] = request_id
    started = g.get("pdp_log_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    log_request(request_id=request_id, method=request.method, path=request.path,
                route=request.url_rule.rule if request.url_rule is not None else None,
                status=response.status_code, duration_ms=duration_ms,
                caller=getattr(g.get("caller"), "name", None),
                remote_addr=request.remote_addr)
    return response


def init_app(app: Flask) -> None:
    """Give every request an id and log one line when it is answered."""
    app.before_request(_begin)
    app.after_request(_end)


try:                                     # gunicorn is there wherever pdp serve runs
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:                      # pragma: no cover
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger without access-log lines: pdp writes its own request line."""

    def access(self, resp, req, environ, request_time):
        return None
