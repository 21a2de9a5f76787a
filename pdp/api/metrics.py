"""Prometheus metrics: the metric objects, helpers that record into them, and
``GET /metrics`` (no key).

Other modules record through the helpers, never through the objects (decisions
and token errors are counted by :class:`MeteredSink`, which ``create_app`` wraps
around the decision sink: do not count them again elsewhere):

* :func:`observe_decision` — one answered decision: its result and how long it took;
* :func:`count_token_error` — an end-user token refused, by error code;
* :func:`set_policy_version` — the version of a policy set this process serves
  (wired to :class:`~pdp.service.active.ActivePolicies` by ``create_app``);
* :func:`set_audit_queue_depth`, :func:`count_spilled_records`,
  :func:`count_quarantined_records`,
  :func:`count_written_records`, :func:`count_replayed_records`,
  :func:`count_audit_write_failures` — the decision log's writer
  (:class:`AuditMetrics` hands them to :class:`~pdp.audit.writer.AuditWriter`);
* HTTP requests by method, route and status are counted by :func:`init_app`.

Two modes, chosen by ``prometheus_client`` when it is imported:

* single process (``PROMETHEUS_MULTIPROC_DIR`` unset): the default registry, as is;
* multiprocess (``PROMETHEUS_MULTIPROC_DIR`` set, as ``pdp serve`` does under
  gunicorn): every worker writes its values to files in that directory and
  ``/metrics``, in whichever worker answers, aggregates them all. Counters and
  histograms are summed across workers; the policy version gauge takes the highest
  value among live workers (``livemax``); the audit queue depth is summed over live
  workers (``livesum``). The gunicorn ``child_exit`` hook calls
  :func:`mark_process_dead` so a dead worker's live gauges disappear.

Labels are bounded: the route is the URL rule (``/v1/policy-sets/<set_name>``),
never the raw path; results and token error codes are small fixed sets.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Buckets of the decision latency histogram, in seconds: decisions are fast.
DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0)

DECISIONS = Counter(
    "pdp_decisions_total", "Decisions answered, by result (allow, deny).", ["result"])
DECISION_SECONDS = Histogram(
    "pdp_decision_duration_seconds",
    "Time to answer one decision (token check, evaluation, recording), in seconds.",
    buckets=DECISION_BUCKETS)
TOKEN_ERRORS = Counter(
    "pdp_token_errors_total", "End-user tokens refused, by error code.", ["code"])
POLICY_VERSION = Gauge(
    "pdp_policy_version", "The active version of each policy set served.",
    ["policy_set"], multiprocess_mode="livemax")
AUDIT_QUEUE_DEPTH = Gauge(
    "pdp_audit_queue_depth", "Decision records waiting to be written to the store.",
    multiprocess_mode="livesum")
AUDIT_SPILLED = Counter(
    "pdp_audit_spilled_records_total",
    "Decision records spilled to the local file because the store was slow or down.")
AUDIT_WRITTEN = Counter(
    "pdp_audit_written_records_total",
    "Decision records written to the store by the writer (not counting replays).")
AUDIT_REPLAYED = Counter(
    "pdp_audit_replayed_records_total",
    "Decision records written to the store from a spill file.")
AUDIT_WRITE_FAILURES = Counter(
    "pdp_audit_write_failures_total",
    "Decision records that could be neither written to the store nor spilled.")
AUDIT_QUARANTINED = Counter(
    "pdp_audit_quarantined_records_total",
    "Decision records the store refused (a value it cannot hold), kept in the spill "
    "directory's quarantine file instead of the decision log.")
HTTP_REQUESTS = Counter(
    "pdp_http_requests_total", "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "pdp_http_request_duration_seconds", "Time to answer an HTTP request, in seconds.",
    ["method", "route"], buckets=HTTP_BUCKETS)

#: The route label of requests that match no route (404, 405 on unknown paths).
UNMATCHED = "unmatched"


# --------------------------------------------------------------------------- helpers

def _child(metric, cache: dict, key: tuple):
    """``metric.labels(*key)``, remembered: the same child every time, without
    ``labels()``'s validation on every request. Keys are bounded (see the module
    docstring), so is the cache."""
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*key)
    return child


_DECISION_CHILDREN: dict = {}
_HTTP_COUNT_CHILDREN: dict = {}
_HTTP_SECONDS_CHILDREN: dict = {}


def observe_decision(result: str, seconds: float) -> None:
    """Count one answered decision (``result``: ``allow`` or ``deny``) and its latency."""
    _child(DECISIONS, _DECISION_CHILDREN, (result,)).inc()
    DECISION_SECONDS.observe(max(0.0, seconds))


def observe_request(method: str, route: str | None, status: int, seconds: float | None) -> None:
    """Count one answered HTTP request (``route``: the URL rule, ``None`` when none
    matched) and its duration."""
    route = UNMATCHED if route is None else route
    method = method if method in _METHODS else "other"
    _child(HTTP_REQUESTS, _HTTP_COUNT_CHILDREN, (method, route, str(status))).inc()
    if seconds is not None:
        _child(HTTP_SECONDS, _HTTP_SECONDS_CHILDREN, (method, route)).observe(seconds)


def count_token_error(code: str) -> None:
    """Count one refused end-user token (``code``: ``token_expired``, …)."""
    TOKEN_ERRORS.labels(code=code).inc()


def set_policy_version(policy_set: str, version: int) -> None:
    """The version of ``policy_set`` this process now serves."""
    POLICY_VERSION.labels(policy_set=policy_set).set(version)


def set_audit_queue_depth(depth: int) -> None:
    AUDIT_QUEUE_DEPTH.set(depth)


def count_spilled_records(count: int = 1) -> None:
    AUDIT_SPILLED.inc(count)


def count_written_records(count: int = 1) -> None:
    AUDIT_WRITTEN.inc(count)


def count_replayed_records(count: int = 1) -> None:
    AUDIT_REPLAYED.inc(count)


def count_audit_write_failures(count: int = 1) -> None:
    AUDIT_WRITE_FAILURES.inc(count)


def count_quarantined_records(count: int = 1) -> None:
    AUDIT_QUARANTINED.inc(count)


class AuditMetrics:
    """The decision log writer's reports, into the metrics above."""

    def queue_depth(self, depth: int) -> None:
        set_audit_queue_depth(depth)

    def written(self, count: int) -> None:
        if count:
            count_written_records(count)

    def spilled(self, count: int) -> None:
        if count:
            count_spilled_records(count)

    def replayed(self, count: int) -> None:
        if count:
            count_replayed_records(count)

    def write_failed(self, count: int) -> None:
        if count:
            count_audit_write_failures(count)

    def quarantined(self, count: int) -> None:
        if count:
            count_quarantined_records(count)


class MeteredSink:
    """A decision sink that counts each decision once it is recorded, then lets
    ``inner`` record it: ``create_app`` wraps the decision log's sink in it, so every
    answered decision (``/v1/decide``, batch, AuthZEN, gateway) is counted by result,
    with its latency (verification and evaluation, ``outcome.evaluation_us``, plus
    the time ``inner`` took to record it), and a refused token by its code. A
    decision whose recording fails is not answered, and not counted."""

    def __init__(self, inner):
        self.inner = inner

    def record(self, outcome, input, caller) -> None:
        started = time.perf_counter()
        self.inner.record(outcome, input, caller)
        recording = time.perf_counter() - started
        observe_decision(outcome.decision, outcome.evaluation_us / 1e6 + recording)
        if outcome.token_error:
            count_token_error(outcome.token_error)


def multiprocess_dir() -> str | None:
    """The multiprocess directory in use, or ``None`` in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (gunicorn ``child_exit``)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def exposition() -> bytes:
    """The Prometheus text of every metric: aggregated over all processes in
    multiprocess mode, this process's own otherwise."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# --------------------------------------------------------------------------- Flask

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.pdp_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    started = g.get("pdp_started")
    observe_request(request.method, request.url_rule.rule if request.url_rule is not None
                    else None, response.status_code,
                    None if started is None else time.perf_counter() - started)
    return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and count every HTTP request."""
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.after_request(_count_request)
