"""The decision log, read side (role ``auditor`` only).

==========================================  ==========================================
``GET /v1/decisions``                       a page of decisions, newest first
``GET /v1/decisions/export``                every matching decision, streamed as CSV or NDJSON
``GET /v1/decisions/stats``                 allow/deny per bucket, top denied, errors by code
``GET /v1/decisions/{decision_id}``         one decision (404 ``decision_not_found``)
==========================================  ==========================================

Filters are query parameters, read by strict marshmallow schemas: an unknown
parameter, a repeated one, a time that is not RFC 3339 with an offset, an unknown
``decision``, ``bucket`` or ``format``, a ``limit`` outside 1…1000 or a cursor this
service did not hand out → 400 naming the parameter in ``error.field``.

The export is a generator that reads the log page by page by keyset
(:func:`pdp.audit.queries.iter_decisions`); it never holds the whole result. The
first page is read before the response starts, so that a store failure is still
a proper 503; a failure later can only cut the stream short (and is logged).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timezone

from flask import Blueprint, Response, request
from marshmallow import fields, validate

from pdp.api.auth import require_role
from pdp.api.context import services
from pdp.api.schemas import Strict, load
from pdp.audit import queries
from pdp.errors import RequestError

log = logging.getLogger(__name__)

bp = Blueprint("decisions", __name__, url_prefix="/v1/decisions")

EXPORT_FORMATS = ("csv", "ndjson")
EXPORT_MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


# --------------------------------------------------------------------------- parameters

class Rfc3339(fields.AwareDateTime):
    """An RFC 3339 time with an offset (``Z`` or ``±hh:mm``), returned in UTC."""

    default_error_messages = {
        "invalid": "Not an RFC 3339 time (e.g. 2026-11-29T12:00:00Z).",
        "invalid_awareness": "Not an RFC 3339 time: the UTC offset is missing "
                             "(e.g. 2026-11-29T12:00:00Z).",
    }

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or "T" not in value.upper():
            raise self.make_error("invalid")
        return super()._deserialize(value.upper(), attr, data, **kwargs).astimezone(
            timezone.utc)


_text = {"validate": validate.Length(min=1, max=1024)}


class FilterParams(Strict):
    time_from = Rfc3339(data_key="from")
    time_to = Rfc3339(data_key="to")
    subject = fields.String(**_text)
    caller = fields.String(**_text)
    action = fields.String(**_text)
    resource_type = fields.String(**_text)
    resource_id = fields.String(**_text)
    decision = fields.String(validate=validate.OneOf(queries.DECISIONS))
    policy_id = fields.String(**_text)
    policy_set = fields.String(**_text)
    policy_version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))


class ListParams(FilterParams):
    limit = fields.Integer(load_default=queries.DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=queries.MAX_LIMIT))
    cursor = fields.String(validate=validate.Length(min=1, max=64))


class ExportParams(FilterParams):
    format = fields.String(required=True, validate=validate.OneOf(EXPORT_FORMATS))


class StatsParams(FilterParams):
    bucket = fields.String(load_default="hour", validate=validate.OneOf(queries.BUCKETS))


_FILTER_FIELDS = tuple(FilterParams().fields)


def _params(schema: Strict) -> dict:
    """The query string through ``schema``; a repeated parameter is refused."""
    data = {}
    for name, values in request.args.lists():
        if len(values) > 1:
            raise RequestError(f"{name}: given more than once", field=name,
                               code="invalid_field")
        data[name] = values[0]
    return load(schema, data)


def decision_filter(params: dict) -> queries.DecisionFilter:
    return queries.DecisionFilter(**{k: params[k] for k in _FILTER_FIELDS if k in params})


# --------------------------------------------------------------------------- views

@bp.get("")
@require_role("auditor")
def list_decisions():
    params = _params(ListParams())
    page = queries.list_decisions(services().db, decision_filter(params), limit=params["limit"],
                                  cursor=params.get("cursor"))
    return {"decisions": page.decisions, "next_cursor": page.next_cursor}


@bp.get("/export")
@require_role("auditor")
def export_decisions():
    return export_response(_params(ExportParams()))


@bp.get("/stats")
@require_role("auditor")
def decision_stats():
    params = _params(StatsParams())
    result = queries.stats(services().db, params.get("time_from"), params.get("time_to"),
                           params["bucket"],
                           decision_filter({k: v for k, v in params.items()
                                    if k not in ("time_from", "time_to")}))
    return result.to_dict()


@bp.get("/<decision_id>")
@require_role("auditor")
def get_decision(decision_id: str):
    return queries.get_decision(services().db, decision_id)


# --------------------------------------------------------------------------- export

def export_response(params: dict) -> Response:
    """The streamed export of the records matching ``params`` (loaded by
    :class:`ExportParams`), as an attachment; the console's export answers the same."""
    fmt = params["format"]
    records = queries.iter_decisions(services().db, decision_filter(params))
    first = next(records, None)            # a store failure is still a 503 here
    body = stream_export(fmt, first, records)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Response(body, mimetype=None, content_type=EXPORT_MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="decisions-{stamp}.{fmt}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def stream_export(fmt: str, first: dict | None, rest: Iterator[dict]) -> Iterator[str]:
    """The export body, record by record (a generator)."""
    if fmt == "csv":
        yield csv_line(queries.COLUMNS)
    try:
        record = first
        while record is not None:
            yield csv_line(csv_row(record)) if fmt == "csv" else ndjson_line(record)
            record = next(rest, None)
    except Exception:
        log.exception("decision export failed part way; the stream is cut short")
        raise


def csv_row(record: dict) -> list[str]:
    """A record as CSV cells: JSON columns as compact JSON text, ``None`` as empty."""
    cells = []
    for name in queries.COLUMNS:
        value = record[name]
        if name in queries.JSON_COLUMNS:
            cells.append("" if value is None else json.dumps(value, ensure_ascii=False,
                                                             separators=(",", ":")))
        else:
            cells.append("" if value is None else str(value))
    return cells


def csv_line(cells) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def ndjson_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
