"""``/console/decisions``: the decision log, its export, and one decision beside
the policies that decided it (role ``auditor``).

==========================================  ==========================================
``GET /console/decisions``                  the log: filters, keyset paging
``GET /console/decisions/export``           CSV / NDJSON, the bytes of ``/v1/decisions/export``
``GET /console/decisions/<decision_id>``    one record and the deciding policies' source
==========================================  ==========================================

The filter form's fields carry the names of ``GET /v1/decisions``' query
parameters and are read by the API's own schemas (:class:`~pdp.api.decisions.ListParams`,
:class:`~pdp.api.decisions.ExportParams`), so a filter means the same and a bad one
is refused the same way (here: the page again, status 400, ``p#filter-error``
naming the field). Two concessions to an HTML form: an empty field is no filter,
and a ``from`` / ``to`` without a UTC offset in the shape an
``<input type=datetime-local>`` sends (``2026-11-29T12:00``) is taken as UTC.

The source of a deciding policy is the version that decided, which never
changes: the parsed spans of a version are cached in-process (bounded), keyed by
set, number and content hash, after a cheap metadata read that also notices a
version that was pruned since.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from flask import Response, make_response, render_template, request, url_for
from werkzeug.routing import BuildError

from pdp.api.console import render
from pdp.api.console.render import Line, ParsedVersion, source_lines
from pdp.api.console.session import bp, page
from pdp.api.context import services
from pdp.api.decisions import ExportParams, ListParams, decision_filter, export_response
from pdp.api.schemas import load
from pdp.audit import queries
from pdp.errors import NotFound, PdpError, RequestError
from pdp.service import policies as policy_service
from pdp.store import StoreError

#: The filter fields of the form, in the order shown.
FILTER_FIELDS = ("from", "to", "subject", "caller", "action", "resource_type", "resource_id",
                 "decision", "policy_id", "policy_set", "policy_version")
#: A time as ``<input type=datetime-local>`` sends it: no offset (taken as UTC).
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?", re.IGNORECASE)
_TIME_FIELDS = ("from", "to")

#: Parsed versions kept in memory.


# --------------------------------------------------------------------------- parameters

def _form_args() -> dict[str, str]:
    """The query string as the form sent it: empty fields dropped, a parameter
    given twice (with values) refused like the API does."""
    out: dict[str, str] = {}
    for name, values in request.args.lists():
        given = [v for v in values if v.strip()]
        if len(given) > 1:
            raise RequestError(f"{name}: given more than once", field=name,
                               code="invalid_field")
        if given:
            out[name] = given[0]
    return out


def _api_args(args: Mapping[str, str]) -> dict[str, str]:
    """``args`` as ``GET /v1/decisions`` would be given them: times without an
    offset get ``Z``."""
    out = dict(args)
    for name in _TIME_FIELDS:
        value = out.get(name)
        if value is not None and _LOCAL_TIME.fullmatch(value.strip()):
            out[name] = value.strip() + "Z"
    return out


# --------------------------------------------------------------------------- the log

@bp.get("/decisions")
@page("auditor")
def decisions():
    args: dict[str, str] = {}
    try:
        args = _form_args()
        params = load(ListParams(), _api_args(args))
        result = queries.list_decisions(services().db, decision_filter(params),
                                        limit=params["limit"], cursor=params.get("cursor"))
    except RequestError as exc:
        return _log_page(args or _raw_first_values(), error=exc, status=400)
    return _log_page(args, result=result)


def _raw_first_values() -> dict[str, str]:
    return {name: value for name, value in request.args.items() if value.strip()}


def _log_page(args: Mapping[str, str], *, result: queries.Page | None = None,
              error: RequestError | None = None, status: int = 200) -> Response:
    # only the form's own fields: anything else was refused, and must not reach url_for
    filters = {k: v for k, v in args.items() if k in FILTER_FIELDS or k == "limit"}
    export_filters = {k: v for k, v in filters.items() if k not in ("limit", "format")}
    next_url = first_url = None
    if result is not None and result.next_cursor:
        next_url = url_for("console.decisions", **filters, cursor=result.next_cursor)
    if "cursor" in args:
        first_url = url_for("console.decisions", **filters)
    html = render_template(
        "console/decisions.html", nav="decisions", filters=filters, result=result,
        error=error, error_field=(error.field if error is not None else None),
        next_url=next_url, first_url=first_url,
        clear_url=url_for("console.decisions"),
        export_csv=url_for("console.export_decisions", format="csv", **export_filters),
        export_ndjson=url_for("console.export_decisions", format="ndjson", **export_filters))
    return make_response(html, status)


@bp.get("/decisions/export")
@page("auditor")
def export_decisions():
    """What ``GET /v1/decisions/export`` answers for the same filters."""
    args: dict[str, str] = {}
    try:
        args = _form_args()
        params = load(ExportParams(), _api_args(args))
    except RequestError as exc:
        return _log_page(args or _raw_first_values(), error=exc, status=400)
    return export_response(params)


# --------------------------------------------------------------------------- one decision

@dataclass(frozen=True, slots=True)
class PolicySource:
    """A deciding policy as the detail page shows it."""

    policy_id: str
    path: str | None = None
    lines: tuple[Line, ...] = ()
    href: str | None = None
    #: Why there is no source to show, if there is none.
    missing: str | None = None


def _version(db, set_name: str, number: int) -> ParsedVersion:
    """A version's files and where each policy sits in them, parsed once per
    process (:class:`NotFound` when the set or version does not exist)."""
    info = policy_service.get_version(db, number, set_name)
    key = (set_name, number, info.content_hash)
    hit = render.versions.get(key)
    if hit is not None:
        return hit
    sources = policy_service.show_version(db, number, set_name, with_policies=False)
    return render.versions.put(key, sources.files)


def _version_href(set_name: str, number: int, policy_id: str) -> str:
    anchor = f"policy-{policy_id}"
    try:
        return url_for("console.policy_version", set_name=set_name, number=number,
                       _anchor=anchor)
    except BuildError:      # the policy pages are not registered (yet)
        return (f"{url_for('console.policy_sets')}/{quote(set_name, safe='')}/versions/"
                f"{number}#{quote(anchor, safe='')}")


def _sources(db, record: Mapping) -> list[PolicySource]:
    ids = list(dict.fromkeys(p for p in (record.get("policies") or []) if isinstance(p, str)))
    set_name, number = record.get("policy_set"), record.get("policy_version")
    if not ids:
        return []
    if not set_name or not isinstance(number, int):
        return [PolicySource(i, missing="The decision names no policy set version.")
                for i in ids]
    try:
        version = _version(db, set_name, number)
    except NotFound:
        return [PolicySource(i, missing=f"Version {number} of policy set {set_name!r} no "
                                        "longer exists (pruned or unknown).") for i in ids]
    except StoreError:
        raise
    except PdpError as exc:
        return [PolicySource(i, missing=f"The source of version {number} of {set_name!r} "
                                        f"cannot be shown: {exc.message}") for i in ids]
    out = []
    for policy_id in ids:
        span = version.spans.get(policy_id)
        href = _version_href(set_name, number, policy_id)
        if span is None or span.path not in version.files:
            out.append(PolicySource(policy_id, href=href, missing=(
                f"Version {number} of {set_name!r} has no policy {policy_id!r}.")))
            continue
        lines = source_lines(version.files[span.path], [span], highlight=[policy_id])
        out.append(PolicySource(policy_id, span.path, tuple(lines), href))
    return out


@bp.get("/decisions/<decision_id>")
@page("auditor")
def decision(decision_id: str):
    db = services().db
    record = queries.get_decision(db, decision_id)      # 404 decision_not_found
    return render_template("console/decision.html", nav="decisions", d=record,
                           sources=_sources(db, record))
