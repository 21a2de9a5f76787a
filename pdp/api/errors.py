"""Errors → HTTP: one JSON error shape for every failure the service answers.

Every error response, whatever raised it, has the body::

    {"error": {"code": "invalid_request", "message": "…",
               "field": "files.docs.policy",          # when one part of the request is at fault
               "diagnostics": [{"file", "line", "column", "code", "message"}, …]}}   # policy errors

This is the only module of pdp that knows HTTP status codes for errors:

========================================  ======  ==================================
raised                                    status  ``error.code``
========================================  ======  ==================================
:class:`~pdp.errors.RequestError`         400     its code (``invalid_request`` …)
:class:`~pdp.errors.LimitError`           400     ``limit_exceeded``
:class:`~pdp.errors.PolicyError`          422     ``policy_error`` + ``diagnostics``
:class:`~pdp.errors.NotFound`             404     its code
:class:`~pdp.errors.Conflict`             409     its code
:class:`Unauthenticated`                  401     ``unauthenticated`` (+ ``WWW-Authenticate``)
:class:`~pdp.errors.Forbidden`            403     ``forbidden`` (:class:`Forbidden` too)
:class:`~pdp.store.StoreError`            503     ``store_unavailable`` … (details logged)
:class:`~pdp.errors.Unavailable`          503     its code (``no_active_version`` …)
any other :class:`~pdp.errors.PdpError`   400     its code (a deliberate refusal of the input)
werkzeug ``HTTPException``                its     ``not_found``, ``method_not_allowed``,
                                          own     ``payload_too_large`` …
anything else                             500     ``internal_error`` (details only in the log)
========================================  ======  ==================================

No handler ever renders HTML.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from pdp.errors import Conflict, LimitError, NotFound, PdpError, PolicyError, RequestError, Unavailable
from pdp.errors import Forbidden as BaseForbidden
from pdp.store import StoreError

log = logging.getLogger(__name__)


class Unauthenticated(PdpError):
    """No usable caller credential. The message never says which part was wrong."""

    code = "unauthenticated"

    def __init__(self, message: str = "a valid API key is required: Authorization: Bearer <key>"):
        super().__init__(message)


class Forbidden(BaseForbidden):
    """A known caller without the right to do this (also raised by the service
    layer as :class:`pdp.errors.Forbidden`; both are 403)."""


#: Most specific class first; the first match decides.
STATUS_BY_ERROR: tuple[tuple[type[PdpError], int], ...] = (
    (Unauthenticated, 401),
    (BaseForbidden, 403),
    (PolicyError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (RequestError, 400),
    (LimitError, 400),
    (StoreError, 503),
    (Unavailable, 503),
)

#: ``error.code`` for HTTP errors raised by Flask/werkzeug themselves.
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}

#: What clients see when the store fails; the details go to the log only.
STORE_MESSAGE = "the policy store is unavailable; try again later"
#: What clients see for an unexpected failure; the details go to the log only.
INTERNAL_MESSAGE = "internal error; the details are in the service log"


def status_of(exc: PdpError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(status: int, code: str, message: str, *, field: str | None = None,
                   diagnostics: list[dict] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The one error shape, as a response."""
    body: dict = {"code": code, "message": message}
    if field:
        body["field"] = field
    if diagnostics is not None:
        body["diagnostics"] = diagnostics
    response = jsonify({"error": body})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def pdp_error_response(exc: PdpError) -> Response:
    status = status_of(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="pdp"'} if status == 401 else None
    message = exc.message
    if isinstance(exc, StoreError):    # the driver's words stay in the log
        log.error("store unavailable: %s", exc)
        message = STORE_MESSAGE
    diagnostics = ([d.to_dict() for d in exc.diagnostics]
                   if isinstance(exc, PolicyError) else None)
    return error_response(status, exc.code, message,
                          field=getattr(exc, "field", None),
                          diagnostics=diagnostics, headers=headers)


def http_error_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status) or _snake(exc.name)
    original = dict(exc.get_headers())
    headers = {name: original[name] for name in ("Allow", "Retry-After", "WWW-Authenticate")
               if name in original}
    if status >= 500:
        log.error("HTTP %d: %s", status, exc.description)
        message = INTERNAL_MESSAGE if status == 500 else (exc.description or exc.name)
    else:
        message = _http_message(status, exc)
    return error_response(status, code, message, headers=headers)


def internal_error_response(exc: BaseException) -> Response:
    log.exception("unhandled error while answering a request", exc_info=exc)
    return error_response(500, "internal_error", INTERNAL_MESSAGE)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(PdpError, pdp_error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, internal_error_response)


def _http_message(status: int, exc: HTTPException) -> str:
    if status == 404:
        return "no such resource"
    if status == 405:
        return "method not allowed on this resource"
    if status == 413:
        return "the request body is too large"
    return exc.description or exc.name


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "http_error"
