"""``/console/``: the overview — allow/deny over time, the most denied subjects,
callers and resources, errors by code, and the state of the audit chain.

``?range=hour|day|week`` (default ``day``) picks the window: the last 60 minutes
per minute, the last 24 hours per hour, the last 7 days per hour. The window
ends at the end of the current bucket, so every bucket is a whole period and
the newest holds "now". Counts come from :func:`pdp.audit.queries.stats`, the
same function behind ``GET /v1/decisions/stats``; the chart is an SVG drawn here
(:mod:`.chart`).

The chain section shows the head and the newest recorded verification
(:mod:`pdp.audit.verifications`): ``verified`` (up to the head it saw; records
appended since are counted), ``broken`` (what and where) or ``unverified``.
``POST /console/chain/verify`` verifies the whole chain now and records it.

An ``admin``-only session has nothing to see here and is sent to the policies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import redirect, render_template, request, url_for

from pdp.api.console.chart import BUCKET_SPAN, decision_chart, fill_buckets, floor_time
from pdp.api.console.session import bp, current_session, error_page, page
from pdp.api.context import services
from pdp.audit import chain, queries, verifications
from pdp.audit.verifications import Verification

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    label: str
    length: timedelta
    bucket: str


RANGES = {r.name: r for r in (
    Range("hour", "last hour", timedelta(hours=1), "minute"),
    Range("day", "last 24 hours", timedelta(days=1), "hour"),
    Range("week", "last 7 days", timedelta(days=7), "hour"),
)}
DEFAULT_RANGE = "day"


@dataclass(frozen=True, slots=True)
class Window:
    range: Range
    time_from: datetime
    time_to: datetime

    @property
    def bucket(self) -> str:
        return self.range.bucket

    def query(self) -> dict[str, str]:
        """``from`` and ``to`` as the decision log's filters take them."""
        return {"from": _rfc3339(self.time_from), "to": _rfc3339(self.time_to)}


def window_for(range_: Range, now: datetime | None = None) -> Window:
    """``range_`` ending with the bucket that holds ``now``."""
    now = now or datetime.now(timezone.utc)
    time_to = floor_time(now, range_.bucket) + BUCKET_SPAN[range_.bucket]
    return Window(range_, time_to - range_.length, time_to)


@dataclass(frozen=True, slots=True)
class ChainState:
    #: ``verified``, ``broken`` or ``unverified``.
    state: str
    head_seq: int
    head_hash: str
    last: Verification | None
    #: Records appended after the head the last verification saw.
    appended_since: int


def chain_state(db) -> ChainState:
    head_seq, head_hash = chain.head(db)
    last = verifications.last_verification(db)
    if last is None:
        return ChainState("unverified", head_seq, head_hash, None, 0)
    return ChainState("verified" if last.ok else "broken", head_seq, head_hash, last,
                      max(0, head_seq - last.head_seq))


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _log_link(window: Window, **filters) -> str:
    return url_for("console.decisions", **window.query(), **filters)


def _tops(stats: queries.Stats, window: Window) -> dict[str, list[dict]]:
    """The "top" lists, each entry with ``href``: the decision log filtered to it
    (``None`` for decisions without a subject, which no filter selects)."""
    deny = {"decision": "deny"}
    subjects = [{**r, "href": _log_link(window, subject=r["subject"], **deny)
                 if r["subject"] else None} for r in stats.top_denied_subjects]
    callers = [{**r, "href": _log_link(window, caller=r["caller"], **deny)}
               for r in stats.top_denied_callers]
    resources = []
    for r in stats.top_denied_resources:
        filters = {k: r[k] for k in ("resource_type", "resource_id") if r[k] is not None}
        resources.append({**r, "href": _log_link(window, **filters, **deny)})
    # the log has no filter by error code: the link shows the window's decisions
    errors = [{**r, "href": _log_link(window)} for r in stats.errors]
    return {"subjects": subjects, "callers": callers, "resources": resources,
            "errors": errors}


@bp.get("/")
@page()
def overview():
    session = current_session()
    if not session.has_role("auditor"):
        if session.has_role("admin"):
            return redirect(url_for("console.policy_sets"), 303)
        return error_page(403, "forbidden", "The overview needs the 'auditor' role.")
    name = request.args.get("range", DEFAULT_RANGE)
    range_ = RANGES.get(name)
    if range_ is None:
        return error_page(400, "invalid_field",
                          f"range: must be one of {', '.join(RANGES)}")
    db = services().db
    window = window_for(range_)
    stats = queries.stats(db, window.time_from, window.time_to, window.bucket)
    buckets = fill_buckets(stats.buckets, window.time_from, window.time_to, window.bucket)
    chart = decision_chart(
        buckets, window.bucket,
        title=f"Allow and deny decisions per {window.bucket}, {_shown(window.time_from)} "
              f"to {_shown(window.time_to)}")
    return render_template(
        "console/overview.html", nav="overview", ranges=RANGES.values(), current=range_,
        window=window, window_query=window.query(), shown=_shown, chart=chart,
        totals=stats.totals, tops=_tops(stats, window), chain=chain_state(db),
        all_decisions=_log_link(window))


@bp.post("/chain/verify")
@page("auditor")
def verify_chain():
    session = current_session()
    result, _ = verifications.verify_and_record(services().db,
                                                by=f"console:{session.key_name}")
    if result.ok:
        log.info("console: %s verified the audit chain: %d record(s), head %d",
                 session.key_name, result.checked, result.head_seq)
    else:
        log.warning("console: %s verified the audit chain: BROKEN at %s (%s): %s",
                    session.key_name, result.seq, result.problem, result.message)
    return redirect(url_for("console.overview"), 303)
