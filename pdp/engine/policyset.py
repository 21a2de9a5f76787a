"""A compiled policy set: indexed, decided, serialised.

A :class:`PolicySet` is built once from policy syntax trees and reference data:
the policies are sorted by id, compiled to Python by :mod:`pdp.engine.codegen`,
and indexed by (resource type, action) so that a decision only runs its
candidates. It is immutable afterwards and safe to share between threads.

:meth:`PolicySet.decide` never raises: a malformed request is a ``deny`` with an
``invalid_request`` error, an evaluation error is reported with the policy id and
its location, and errors never grant (spec §5).

:meth:`PolicySet.to_bytes` stores the policies' syntax trees (not code), the
reference data and metadata as JSON; :meth:`PolicySet.from_bytes` validates the
trees and generates the code again.
"""

from __future__ import annotations

import gc
import json
import threading
from contextlib import contextmanager
import time as _time
from dataclasses import dataclass, field
from datetime import datetime

from pdp.engine import codegen
from pdp.engine.runtime import EvalError
from pdp.errors import PdpError
from pdp.lang import ast
from pdp.lang.values import Timestamp, parse_timestamp

__all__ = ["Decision", "PolicySet", "FORMAT", "FORMAT_VERSION"]

FORMAT = "pdp-policy-set"
FORMAT_VERSION = 1

#: Above this many (type, action) pairs, candidates of pairs that no policy names
#: together are merged per decision instead of precomputed.
_MAX_PAIRS = 20_000


@dataclass(slots=True)
class Decision:
    """The outcome of a request.

    ``policies`` are the ids of the determining policies, ``reasons`` their reasons
    (for those that have one), ``errors`` every evaluation error as
    ``{code, message, policy, location}``; all in policy id order.
    """
    decision: str
    policies: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_dict(self) -> dict:
        return {"decision": self.decision, "policies": list(self.policies),
                "reasons": list(self.reasons), "errors": [dict(e) for e in self.errors]}


class _Compiled:
    """One policy, ready to run."""

    __slots__ = ("index", "id", "forbid", "reason", "fast", "checked", "location")

    # ``checked`` is the checked version, the fast one itself when there is no
    # other, or the name of the checked version until it is first compiled.

    def __init__(self, index, policy, fast, checked):
        self.index = index
        self.id = policy.id
        self.forbid = policy.effect == "forbid"
        self.reason = policy.reason
        self.fast = fast
        self.checked = checked
        self.location = f"{policy.file}:{policy.line}:{policy.column}"


class _BadRequest(Exception):
    pass


_MISSING = object()
_ENVELOPE = frozenset({"subject", "action", "resource", "context"})
_ACTION_FIELDS = frozenset({"name", "attributes"})
_RESOURCE_FIELDS = frozenset({"type", "id", "attributes"})


def _request_time(ctx) -> Timestamp:
    t = ctx.get("time", _MISSING)
    if t is _MISSING:
        return Timestamp(_time.time_ns() // 1000)
    if t.__class__ is Timestamp:
        return t
    if isinstance(t, str):
        try:
            return parse_timestamp(t)
        except ValueError as exc:
            raise _BadRequest(f"context.time: {exc}") from None
    if isinstance(t, datetime):
        try:
            return Timestamp.from_datetime(t)
        except ValueError as exc:
            raise _BadRequest(f"context.time: {exc}") from None
    raise _BadRequest("context.time: must be RFC 3339 text such as \"2026-01-31T09:00:00Z\"")


def _read_request(request):
    """The four request roots as policies see them, plus the type and action name."""
    if not isinstance(request, dict):
        raise _BadRequest("the request must be an object with subject, action, resource "
                          "and context")
    if not _ENVELOPE.issuperset(request):
        extra = sorted(str(k) for k in request if k not in _ENVELOPE)
        raise _BadRequest(f"unknown request field {extra[0]!r} (expected subject, action, "
                          f"resource, context)")
    subject = request.get("subject", _MISSING)
    if not isinstance(subject, dict):
        raise _BadRequest("subject: must be an object of claims"
                          if subject is not _MISSING else "subject: missing")

    a = request.get("action", _MISSING)
    if a.__class__ is str and a:
        name, action = a, {"name": a}
    elif isinstance(a, dict):
        if not _ACTION_FIELDS.issuperset(a):
            raise _BadRequest(f"action: unknown field {sorted(map(str, a.keys() - _ACTION_FIELDS))[0]!r} "
                              f"(expected name and attributes)")
        name = a.get("name")
        if not isinstance(name, str) or not name:
            raise _BadRequest("action.name: must be a non-empty string")
        attrs = a.get("attributes")
        if attrs is None:
            action = {"name": name}
        elif isinstance(attrs, dict):
            action = {**attrs, "name": name}
        else:
            raise _BadRequest("action.attributes: must be an object")
    else:
        raise _BadRequest("action: missing" if a is _MISSING else
                          "action: must be an action name or an object with name and attributes")

    r = request.get("resource", _MISSING)
    if not isinstance(r, dict):
        raise _BadRequest("resource: missing" if r is _MISSING else
                          "resource: must be an object with type, id and attributes")
    if not _RESOURCE_FIELDS.issuperset(r):
        raise _BadRequest(f"resource: unknown field {sorted(map(str, r.keys() - _RESOURCE_FIELDS))[0]!r} "
                          f"(expected type, id and attributes)")
    rtype = r.get("type")
    if not isinstance(rtype, str) or not rtype:
        raise _BadRequest("resource.type: must be a non-empty string")
    attrs = r.get("attributes")
    if attrs is None:
        resource = {"type": rtype}
    elif isinstance(attrs, dict):
        resource = {**attrs, "type": rtype}
    else:
        raise _BadRequest("resource.attributes: must be an object")
    rid = r.get("id", _MISSING)
    if rid is not _MISSING:
        if not isinstance(rid, str):
            raise _BadRequest("resource.id: must be a string")
        resource["id"] = rid
    elif "id" in resource:
        del resource["id"]                  # only the request's id is the resource's id

    ctx = request.get("context")
    if ctx is None:
        context = {"time": Timestamp(_time.time_ns() // 1000)}
    elif isinstance(ctx, dict):
        context = {**ctx, "time": _request_time(ctx)}
    else:
        raise _BadRequest("context: must be an object")
    return subject, action, resource, context, rtype, name


def _metadata(p) -> dict:
    return {"id": p.id, "effect": p.effect,
            "actions": None if p.actions is None else list(p.actions),
            "resource_types": None if p.resource_types is None else list(p.resource_types),
            "reason": p.reason,
            "annotations": {a.name: a.value for a in p.annotations},
            "file": p.file, "line": p.line}


@contextmanager
def _no_gc():
    """Pause the cyclic garbage collector while building many small objects (it
    would otherwise run hundreds of times for nothing: a third of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _bad_set(message: str) -> PdpError:
    return PdpError(f"not a valid compiled policy set: {message}", code="invalid_policy_set")


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


class PolicySet:
    """Compiled, indexed policies and their reference data."""

    def __init__(self, policies, data: dict | None = None):
        with _no_gc():
            self._build(list(policies), data)

    def _build(self, policies: list, data) -> None:
        for p in policies:
            try:
                codegen.validate_policy(p)
            except ValueError as exc:
                raise PdpError(str(exc), code="invalid_policy") from None
        policies.sort(key=lambda p: (p.id, p.file, p.line, p.column))
        for a, b in zip(policies, policies[1:]):
            if a.id == b.id:
                raise PdpError(f"duplicate policy id {a.id!r} ({a.file}:{a.line} and "
                               f"{b.file}:{b.line})", code="duplicate_policy_id")
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise PdpError("reference data must be an object", code="invalid_data")
        self._trees = policies
        self._data = data
        generated = codegen.generate(policies, data)
        self._source = generated.source
        self._sites = generated.sites
        ns = codegen.namespace(generated)
        exec(compile(generated.fast_source, "<pdp policy set>", "exec"), ns)
        self._ns = ns
        self._checked_sources = generated.checked
        self._lock = threading.Lock()
        self._compiled = [_Compiled(i, p, ns[fast], ns[fast] if fast == checked else checked)
                          for i, (p, (fast, checked)) in enumerate(zip(policies, generated.functions))]
        self._build_index()

    # ------------------------------------------------------------------ index

    def _build_index(self):
        exact, by_type, by_action, anyany = {}, {}, {}, []
        for c, p in zip(self._compiled, self._trees):
            types = None if p.resource_types is None else dict.fromkeys(p.resource_types)
            actions = None if p.actions is None else dict.fromkeys(p.actions)
            if types is None and actions is None:
                anyany.append(c)
            elif types is None:
                for a in actions:
                    by_action.setdefault(a, []).append(c)
            elif actions is None:
                for t in types:
                    by_type.setdefault(t, []).append(c)
            else:
                for t in types:
                    for a in actions:
                        exact.setdefault((t, a), []).append(c)
        types = set(by_type) | {t for t, _ in exact}
        actions = set(by_action) | {a for _, a in exact}
        table = {(None, None): tuple(anyany)}
        for t in types:
            table[(t, None)] = _merge(by_type.get(t, ()), anyany)
        for a in actions:
            table[(None, a)] = _merge(by_action.get(a, ()), anyany)
        pairs = ((t, a) for t in types for a in actions) \
            if len(types) * len(actions) <= _MAX_PAIRS else iter(exact)
        for t, a in pairs:
            table[(t, a)] = _merge(exact.get((t, a), ()), by_type.get(t, ()),
                                   by_action.get(a, ()), anyany)
        self._table = table
        self._types = frozenset(types)
        self._actions = frozenset(actions)
        self._by_type = by_type
        self._by_action = by_action
        self._anyany = anyany

    def _candidates(self, rtype, action) -> tuple:
        """Candidates of a pair not in the table (nothing is cached: the table
        does not grow with the requests seen)."""
        t = rtype if rtype in self._types else None
        a = action if action in self._actions else None
        found = self._table.get((t, a))
        if found is None:
            found = _merge(self._by_type.get(t, ()), self._by_action.get(a, ()), self._anyany)
        return found

    def candidates(self, rtype: str, action: str) -> list[str]:
        """The ids of the policies a request for ``rtype``/``action`` evaluates."""
        found = self._table.get((rtype, action))
        if found is None:
            found = self._candidates(rtype, action)
        return [c.id for c in found]

    # ------------------------------------------------------------------ deciding

    def decide(self, request) -> Decision:
        """The decision for ``request`` (a §9 request: subject, action, resource,
        context). Never raises."""
        try:
            subject, action, resource, context, rtype, name = _read_request(request)
        except _BadRequest as exc:
            return Decision("deny", [], [], [{"code": "invalid_request", "message": str(exc),
                                              "policy": None, "location": None}])
        except Exception as exc:              # a hostile mapping, a broken datetime …
            return Decision("deny", [], [], [{"code": "invalid_request",
                                              "message": f"unreadable request ({type(exc).__name__})",
                                              "policy": None, "location": None}])
        try:
            return self._evaluate(subject, action, resource, context, rtype, name)
        except Exception as exc:              # pragma: no cover - a bug: still a deny, not a crash
            return Decision("deny", [], [], [{"code": "internal_error", "message": "internal error while "
                                              f"deciding ({type(exc).__name__})", "policy": None,
                                              "location": None}])

    def _evaluate(self, subject, action, resource, context, rtype, name) -> Decision:
        cands = self._table.get((rtype, name))
        if cands is None:
            cands = self._candidates(rtype, name)
        data = self._data
        forbids, permits, errors = [], [], []
        for c in cands:
            try:
                if not c.fast(subject, action, resource, context, data):
                    continue
            except Exception as exc:
                applies, error = self._explain(c, exc, (subject, action, resource, context, data))
                if error is not None:
                    errors.append(error)
                if not applies:
                    continue
            if c.forbid:
                forbids.append(c)
            else:
                permits.append(c)
        if forbids:
            return Decision("deny", [c.id for c in forbids],
                            [c.reason for c in forbids if c.reason is not None], errors)
        if permits:
            return Decision("allow", [c.id for c in permits],
                            [c.reason for c in permits if c.reason is not None], errors)
        return Decision("deny", [], [], errors)

    def _explain(self, c: _Compiled, exc: Exception, args) -> tuple[bool, dict | None]:
        """After the fast version of ``c`` raised ``exc``: whether ``c`` applies, and
        the error to report. Errors never grant: a failing forbid applies."""
        if exc.__class__ is not EvalError:
            if c.checked is c.fast:
                return c.forbid, self._internal(c, exc)
            try:
                checked = self._checked_version(c)
                return bool(checked(*args)), None
            except EvalError as e:
                exc = e
            except Exception as e:
                return c.forbid, self._internal(c, e)
        return c.forbid, self._error(c, exc)

    def _checked_version(self, c: _Compiled):
        """The checked version of ``c``, compiled from its generated source the
        first time it is needed (sources are generated with the fast versions)."""
        checked = c.checked
        if checked.__class__ is str:
            with self._lock:
                if c.checked.__class__ is str:
                    exec(compile(self._checked_sources[c.checked], "<pdp policy set>", "exec"), self._ns)
                    c.checked = self._ns[c.checked]
                checked = c.checked
        return checked

    def _error(self, c: _Compiled, e: EvalError) -> dict:
        site = self._sites[e.site] if e.site is not None and 0 <= e.site < len(self._sites) else None
        if site is None:
            return {"code": e.code, "message": f"{c.id}: {e.message}", "policy": c.id,
                    "location": c.location}
        if e.step is not None:
            message = f"{c.id}: {site.prefix(e.step)} {e.message}"
        else:
            message = f"{c.id}: {site.text}: {e.message}"
        return {"code": e.code, "message": message, "policy": c.id, "location": site.location}

    @staticmethod
    def _internal(c: _Compiled, exc: BaseException) -> dict:
        if isinstance(exc, RecursionError):
            why = "a value in the request is nested too deeply"
        else:
            why = f"unexpected {type(exc).__name__}"
        return {"code": "internal_error", "message": f"{c.id}: internal error while evaluating "
                f"the policy: {why}", "policy": c.id, "location": c.location}

    # ------------------------------------------------------------------ information

    @property
    def policies(self) -> list[dict]:
        """Metadata of every policy, by id: id, effect, actions, resource_types (None
        for ``*``), reason, annotations, file, line."""
        return [_metadata(p) for p in self._trees]

    @property
    def data(self) -> dict:
        """The reference data (read-only: do not modify)."""
        return self._data

    def __len__(self) -> int:
        return len(self._trees)

    def source(self) -> str:
        """The generated Python (what ``pdp policy compile --show-source`` prints)."""
        return self._source

    def trees(self) -> list:
        """The policies' syntax trees, sorted by id (do not modify)."""
        return list(self._trees)

    # ------------------------------------------------------------------ storage

    def to_bytes(self) -> bytes:
        """JSON: format and version, each policy's metadata and syntax tree, the data."""
        with _no_gc():
            doc = {"format": FORMAT, "version": FORMAT_VERSION,
                   "policies": [{**_metadata(p), "ir": ast.to_data(p)} for p in self._trees],
                   "data": self._data}
            return json.dumps(doc, ensure_ascii=False, allow_nan=False, sort_keys=True,
                              separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, blob: bytes) -> PolicySet:
        """A policy set from :meth:`to_bytes` output: the trees are validated and
        compiled again (no source is parsed, no stored code is run)."""
        with _no_gc():
            return cls._load(blob)

    @classmethod
    def _load(cls, blob) -> PolicySet:
        try:
            doc = json.loads(blob, parse_constant=_reject_constant)
        except (ValueError, TypeError, RecursionError) as exc:
            raise _bad_set(f"not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise _bad_set("unknown format")
        if doc.get("version") != FORMAT_VERSION:
            raise _bad_set(f"unsupported version {doc.get('version')!r} (this pdp reads "
                           f"version {FORMAT_VERSION})")
        entries = doc.get("policies")
        if not isinstance(entries, list):
            raise _bad_set("'policies' must be a list")
        data = doc.get("data", {})
        if not isinstance(data, dict):
            raise _bad_set("'data' must be an object")
        policies = []
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or "ir" not in entry:
                raise _bad_set(f"policy #{n} has no syntax tree")
            try:
                p = ast.from_data(entry["ir"])
                codegen.validate_policy(p)
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                raise _bad_set(f"policy #{n}: {exc}") from None
            meta = {k: v for k, v in entry.items() if k != "ir"}
            if meta != _metadata(p):
                raise _bad_set(f"policy #{n}: metadata does not match its syntax tree")
            policies.append(p)
        try:
            return cls(policies, data)
        except PdpError as exc:
            raise _bad_set(exc.message) from None


def _merge(*groups) -> tuple:
    """The union of candidate lists, in policy (id) order."""
    seen = {}
    for g in groups:
        for c in g:
            seen[c.index] = c
    return tuple(seen[i] for i in sorted(seen))
