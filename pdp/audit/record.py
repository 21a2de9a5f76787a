"""The decision log's record: :class:`AuditRecord`, built from an answered decision.

:func:`build_record` takes the decision as the service answered it (a
``DecisionOutcome``) and the request as the sink sees it (a ``DecisionInput``,
already without the raw token) and keeps:

* the decision id, its time (UTC, millisecond precision), the caller's name;
* the policy set and version;
* the subject: its ``sub`` claim, and the claims the policies saw, with the named
  claims' values replaced by ``"[redacted]"`` (``PDP_AUDIT_REDACT_CLAIMS``); the
  record lists which claims were redacted. The raw token is never part of it, nor
  its signature: only the verified payload's claims are kept;
* the action (name and attributes), the resource (type, id, attributes), the
  context the policies saw (``time`` as RFC 3339 text);
* the decision, the determining policies, the reasons, the errors, the
  evaluation time in microseconds.

:func:`canonical_json` is the one byte form used for hashing and for the spill
file: sorted keys, no whitespace, UTF-8, no NaN or infinities. Values that JSON
cannot carry are written as their text, so that what is stored is exactly what
was hashed (:meth:`AuditRecord.to_dict` goes through it).

This module imports nothing of the service: it only reads the attributes it
needs (duck typing), so that ``audit`` stays below ``service``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import orjson

#: The value that replaces a redacted claim.
REDACTED = "[redacted]"

__all__ = ["JSON_KEYS", "REDACTED", "RECORD_KEYS", "REPLACEMENT", "ROW_KEYS", "TEXT_LIMITS",
           "AuditRecord", "EncodedRecord", "build_record", "canonical_json", "encode_record",
           "format_time", "parse_time", "plain_json_text", "redact_claims"]


# --------------------------------------------------------------------------- JSON

def _plain(value: Any) -> Any:
    """``value`` with only JSON types: text for anything else; ``None`` for NaN/±inf
    would hide a fact, so they become their text (``"nan"``)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo else value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


#: What :func:`_plainness` finds: not plain JSON (convert it with :func:`_plain`
#: first); plain, and orjson writes it byte for byte as the ``json`` module does
#: (the fast path); plain, but with a float orjson writes in another form.
NOT_PLAIN, EXACT, PLAIN = 0, 1, 2

#: orjson writes a finite float as ``float.__repr__`` does (the shortest text that
#: reads back as it: ``0.1``, ``1e+16``, ``-0.0``) except below this magnitude
#: (``1e-05`` is ``0.00001`` there). Tested on a million random floats and the
#: edges, so that an orjson release that changes this fails the tests rather than
#: the chain's verification.
_EXACT_FLOAT_MIN = 1e-4


def _plainness(value: Any) -> int:
    """:data:`NOT_PLAIN`, :data:`EXACT` or :data:`PLAIN` (see there). Plain means what
    :func:`_plain` makes of a value: ``dict`` with ``str`` keys, ``list``, ``str``,
    ``int``, ``bool``, ``None``, finite ``float`` (exact types, so that nothing is
    converted) — the common case: the decision log's values come from JSON. Such a
    value is encoded as it is, without the copy :func:`_plain` makes. (Scalars in
    containers are checked in the loop, not by a call per item: this runs for every
    decision.)"""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return NOT_PLAIN
        items = value.values()
    elif kind is list:
        items = value
    elif kind is str or kind is int or kind is bool or value is None:
        return EXACT
    elif kind is float:
        return _float_plainness(value)
    else:
        return NOT_PLAIN
    found = EXACT
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        inner = _float_plainness(item) if kind is float else _plainness(item)
        if inner == NOT_PLAIN:
            return NOT_PLAIN
        if inner == PLAIN:
            found = PLAIN
    return found


def _float_plainness(value: float) -> int:
    if not math.isfinite(value):
        return NOT_PLAIN
    return EXACT if value == 0.0 or abs(value) >= _EXACT_FLOAT_MIN else PLAIN


def _is_plain(value: Any) -> bool:
    return _plainness(value) != NOT_PLAIN


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder():
    """The C encoder that ``_canonical`` builds on every call (``JSONEncoder.encode``
    makes one per call), built once: same function, same arguments, so the same
    text. No circular-reference markers: a shared markers dict is not safe across
    threads, and a plain value from JSON cannot be circular (a circular one would
    already recurse without end in :func:`_is_plain`)."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:            # no C accelerator: the encoder's own (slower) path
        return None
    return make(None, _not_json, encoder.encode_basestring, None, ":", ",", True, False,
                False)


_c_canonical = _c_encoder()


def plain_json_text(value: Any) -> str:
    """:func:`canonical_json`'s text of a value that is already plain JSON (see
    :func:`_is_plain`; not checked here), in one call of the C encoder."""
    if _c_canonical is None:
        return _canonical(value)
    return "".join(_c_canonical(value, 0))


_orjson_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS


def _dump(value: Any, exact: bool) -> bytes:
    """The canonical JSON of a plain ``value``: by orjson when ``exact`` (``value``
    is :data:`EXACT`), about five times faster than the ``json`` module and the
    same bytes; by the ``json`` module otherwise, and where orjson refuses (an
    integer beyond 64 bits, nesting deeper than 254, a lone surrogate — which
    cannot be UTF-8 either way: ``UnicodeEncodeError``)."""
    if exact:
        try:
            return _orjson_dumps(value, option=_SORT_KEYS)
        except TypeError:
            pass
    return plain_json_text(value).encode("utf-8")


def _plain_exact(value: Any) -> tuple[Any, bool]:
    """``(value as plain JSON, whether orjson writes it exactly)``: converted by
    :func:`_plain` only when it is not plain already."""
    plainness = _plainness(value)
    if plainness == NOT_PLAIN:
        value = _plain(value)
        plainness = _plainness(value)
    return value, plainness == EXACT


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8 (not ASCII-escaped), no NaN."""
    return _dump(*_plain_exact(value))


#: ``(whole seconds since the epoch, "YYYY-MM-DDTHH:MM:SS")`` of the last time
#: formatted: one tuple, swapped whole, so threads never see half of it.
_second: tuple[int, str] = (-1, "")


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-29T11:53:37.123Z``. The date and
    time of day are formatted once per second (``isoformat``: four-digit years)."""
    global _second
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    whole = value.timestamp() - value.microsecond / 1e6
    seconds = round(whole)
    if seconds < 0:                  # before 1970: no cache
        return value.isoformat(timespec="milliseconds")[:23] + "Z"
    cached, text = _second
    if cached != seconds:
        text = value.isoformat(timespec="seconds")[:19]
        _second = (seconds, text)
    return f"{text}.{value.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _ms(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    elif value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    extra = value.microsecond % 1000
    return value - timedelta(microseconds=extra) if extra else value


# --------------------------------------------------------------------------- redaction

def redact_claims(claims: Mapping[str, Any], names: Iterable[str]) -> tuple[dict, list[str]]:
    """``(claims with the named ones' values replaced by "[redacted]", sorted names
    that were present and replaced)``. Names are top-level claim names; a dotted
    name (``address.email``) reaches into a nested object."""
    out = dict(claims)
    done = []
    for name in names:
        if _redact_path(out, name.split(".")):
            done.append(name)
    return out, sorted(set(done))


def _redact_path(obj: dict, path: list[str]) -> bool:
    head, rest = path[0], path[1:]
    if head not in obj:
        return False
    if not rest:
        obj[head] = REDACTED
        return True
    child = obj[head]
    if not isinstance(child, Mapping):
        return False
    child = dict(child)
    obj[head] = child
    return _redact_path(child, rest)


# --------------------------------------------------------------------------- the record

@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision as recorded; see the module docstring."""

    decision_id: str
    time: datetime
    caller: str
    policy_set: str
    policy_version: int
    subject: str | None
    claims: dict
    action: str
    resource_type: str
    resource_id: str
    decision: str
    action_attributes: dict | None = None
    resource_attributes: dict | None = None
    context: dict = field(default_factory=dict)
    policies: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    evaluation_us: int = 0
    #: Names of the claims whose values were redacted.
    redacted: list = field(default_factory=list)
    #: Set by :func:`build_record` when every value is already a plain JSON value
    #: (its nested values come out of a JSON round trip): :meth:`to_dict` then need
    #: not convert them again. Not a constructor argument, so ``dataclasses.replace``
    #: never carries it over to changed values.
    plain_json: bool = field(default=False, init=False, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The record as JSON values (``time`` as RFC 3339 text), in the column names
        of ``decision_log``."""
        if self.plain_json:
            # what the round trip below gives for such a record: keys in sorted order
            return {
                "action": self.action, "action_attributes": self.action_attributes,
                "caller": self.caller, "claims": self.claims, "context": self.context,
                "decision": self.decision, "decision_id": self.decision_id,
                "errors": self.errors, "evaluation_us": self.evaluation_us,
                "policies": self.policies, "policy_set": self.policy_set,
                "policy_version": self.policy_version, "reasons": self.reasons,
                "redacted": self.redacted, "resource_attributes": self.resource_attributes,
                "resource_id": self.resource_id, "resource_type": self.resource_type,
                "subject": self.subject, "time": format_time(self.time)}
        return json.loads(canonical_json({
            "decision_id": self.decision_id, "time": format_time(self.time),
            "caller": self.caller, "policy_set": self.policy_set,
            "policy_version": self.policy_version, "subject": self.subject,
            "claims": self.claims, "redacted": self.redacted, "action": self.action,
            "action_attributes": self.action_attributes,
            "resource_type": self.resource_type, "resource_id": self.resource_id,
            "resource_attributes": self.resource_attributes, "context": self.context,
            "decision": self.decision, "policies": self.policies, "reasons": self.reasons,
            "errors": self.errors, "evaluation_us": self.evaluation_us}))

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        return cls(
            decision_id=data["decision_id"], time=parse_time(data["time"]),
            caller=data["caller"], policy_set=data["policy_set"],
            policy_version=data["policy_version"], subject=data.get("subject"),
            claims=data.get("claims") or {}, action=data["action"],
            resource_type=data["resource_type"], resource_id=data["resource_id"],
            decision=data["decision"], action_attributes=data.get("action_attributes"),
            resource_attributes=data.get("resource_attributes"),
            context=data.get("context") or {}, policies=list(data.get("policies") or []),
            reasons=list(data.get("reasons") or []), errors=list(data.get("errors") or []),
            evaluation_us=int(data.get("evaluation_us") or 0),
            redacted=list(data.get("redacted") or []))

    @classmethod
    def from_json(cls, raw: bytes) -> AuditRecord:
        return cls.from_dict(json.loads(raw))


def _subject_id(claims: Mapping[str, Any]) -> str | None:
    sub = claims.get("sub")
    if isinstance(sub, bool) or sub is None:
        return None
    if isinstance(sub, (str, int)):
        return str(sub)[:TEXT_LIMITS["subject"]]
    return None


def build_record(outcome: Any, input: Any, *, redact: Iterable[str] = ()) -> AuditRecord:
    """The record of ``outcome`` (a ``DecisionOutcome``) for ``input`` (a
    ``DecisionInput`` without the token), with the claims named in ``redact``
    replaced by ``"[redacted]"``. ``sub`` itself can be redacted: the record's
    ``subject`` is then ``"[redacted]"`` too."""
    claims, redacted = redact_claims(dict(outcome.claims or {}), redact)
    plain = json.loads(canonical_json({
        "claims": claims,
        "action_attributes": dict(input.action_attributes) if input.action_attributes else None,
        "resource_attributes": (dict(input.resource_attributes)
                                if input.resource_attributes else None),
        "context": dict(outcome.context or {}),
        "errors": [dict(e) for e in outcome.errors]}))
    record = AuditRecord(
        decision_id=outcome.decision_id, time=_ms(outcome.time), caller=outcome.caller,
        policy_set=outcome.policy_set, policy_version=int(outcome.policy_version),
        subject=_subject_id(claims), claims=plain["claims"], action=input.action,
        resource_type=input.resource_type, resource_id=input.resource_id,
        decision=outcome.decision, action_attributes=plain["action_attributes"],
        resource_attributes=plain["resource_attributes"], context=plain["context"],
        policies=list(outcome.policies), reasons=list(outcome.reasons),
        errors=plain["errors"], evaluation_us=int(outcome.evaluation_us), redacted=redacted)
    # The nested values are fresh from json.loads; the rest is checked here.
    if _is_plain([record.decision_id, record.caller, record.policy_set, record.policy_version,
                  record.subject, record.action, record.resource_type, record.resource_id,
                  record.decision, record.policies, record.reasons, record.evaluation_us,
                  record.redacted]):
        object.__setattr__(record, "plain_json", True)
    return record


# --------------------------------------------------------------------------- encoded once

#: The keys of :meth:`AuditRecord.to_dict` (the record's columns of ``decision_log``),
#: in the canonical (sorted) order.
RECORD_KEYS = ("action", "action_attributes", "caller", "claims", "context", "decision",
               "decision_id", "errors", "evaluation_us", "policies", "policy_set",
               "policy_version", "reasons", "redacted", "resource_attributes",
               "resource_id", "resource_type", "subject", "time")

#: Which of them hold JSON (stored as JSON text).
JSON_KEYS = frozenset(("action_attributes", "claims", "context", "errors", "policies",
                       "reasons", "redacted", "resource_attributes"))

#: The record's columns of ``decision_log`` other than ``decision_id`` and ``time``,
#: in the table's column order (:attr:`EncodedRecord.row`; checked against the table
#: by :mod:`pdp.audit.chain`).
ROW_KEYS = ("caller", "policy_set", "policy_version", "subject", "action", "resource_type",
            "resource_id", "decision", "claims", "redacted", "action_attributes",
            "resource_attributes", "context", "policies", "reasons", "errors", "evaluation_us")

#: :data:`RECORD_KEYS` in the four runs that the row's own members of the hashed body
#: (``details``, ``kind``, ``seq``) fall between, in sorted order.
MEMBER_RUNS = (RECORD_KEYS[:7], RECORD_KEYS[7:9], RECORD_KEYS[9:17], RECORD_KEYS[17:])

#: The record's text columns (SQL text, not JSON) and the most characters each
#: holds (the store's column lengths, tested; PostgreSQL refuses a longer value, and
#: NUL in any text). The decision service refuses longer actions, resource types
#: and ids; anything longer that reaches a record all the same is cut, ending in
#: "…". (``subject``, from a ``sub`` claim of any length, is cut without the mark,
#: as it always was.)
TEXT_LIMITS = {"action": 256, "caller": 128, "decision_id": 64, "policy_set": 128,
               "resource_id": 1024, "resource_type": 256, "subject": 512}
TEXT_KEYS = tuple(TEXT_LIMITS)

#: Recorded in place of a character that cannot be stored: NUL in a text column, a
#: lone surrogate anywhere (not a Unicode character, not UTF-8).
REPLACEMENT = "\ufffd"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_layout() -> None:
    if sorted(ROW_KEYS + ("decision_id", "time")) != sorted(RECORD_KEYS):
        raise AssertionError("ROW_KEYS does not match RECORD_KEYS")
    if sum(MEMBER_RUNS, ()) != RECORD_KEYS or list(RECORD_KEYS) != sorted(RECORD_KEYS):
        raise AssertionError("MEMBER_RUNS do not match RECORD_KEYS")


_check_layout()


class EncodedRecord(NamedTuple):
    """A record as the decision log's writer stores it, encoded once, by the thread
    that answered the decision (what it holds are bytes and text: nothing that a
    later change to the decision's values could alter).

    ``members`` are the record's canonical JSON members (``"key":value``, joined by
    commas, no braces) in the four runs of :data:`MEMBER_RUNS`: the record's
    canonical JSON (:meth:`to_json`, the spill file's payload) is ``{`` + their join
    + ``}``, and the chain's hashed body (:meth:`body`) is the same with the row's
    own members between them, so nothing is encoded twice. ``row`` holds the values
    of :data:`ROW_KEYS` as stored: text, numbers and ``None`` as they are, the JSON
    columns as their canonical JSON text (``"null"`` for none). Built by
    :func:`encode_record` (the service's records) or :meth:`from_record`; the bytes
    are exactly :meth:`AuditRecord.to_json`'s."""

    decision_id: str
    #: UTC, millisecond precision; ``time_text`` is its RFC 3339 text as recorded.
    time: datetime
    time_text: str
    members: tuple
    row: tuple
    #: The determining policies' ids, in order, as recorded.
    policies: tuple

    def to_json(self) -> bytes:
        return b"{" + b",".join(self.members) + b"}"

    def body(self, seq: int) -> bytes:
        """The canonical JSON of the row at position ``seq`` without its hashes
        (:func:`pdp.audit.chain.row_body`), which the chain hashes."""
        m = self.members
        return b'{%b,"details":null,%b,"kind":"decision",%b,"seq":%d,%b}' % (
            m[0], m[1], m[2], seq, m[3])

    def columns(self) -> dict:
        """``{column: stored value}`` of :data:`ROW_KEYS`."""
        return dict(zip(ROW_KEYS, self.row))

    def to_record(self) -> AuditRecord:
        return AuditRecord.from_json(self.to_json())

    @classmethod
    def from_record(cls, record: AuditRecord) -> EncodedRecord:
        return _encoded(record.to_dict(), record.time)


def _storable(data: dict) -> dict:
    """A copy of ``data`` that the store can hold: NUL in the text columns and lone
    surrogates anywhere (keys too) replaced by U+FFFD, text longer than its column
    cut (:data:`TEXT_LIMITS`)."""
    out = dict(data)
    for key in TEXT_KEYS:
        value = out[key]
        if type(value) is str:
            if "\x00" in value:
                value = value.replace("\x00", REPLACEMENT)
            limit = TEXT_LIMITS[key]
            if len(value) > limit:
                value = value[:limit - 1] + "…"
            out[key] = value
    return _without_lone_surrogates(out)


def _without_lone_surrogates(value: Any) -> Any:
    if type(value) is str:
        return _LONE_SURROGATE.sub(REPLACEMENT, value)
    if type(value) is dict:
        return {_without_lone_surrogates(k): _without_lone_surrogates(v)
                for k, v in value.items()}
    if type(value) is list:
        return [_without_lone_surrogates(v) for v in value]
    return value


def _encoded(data: dict, time: datetime) -> EncodedRecord:
    """``data``: the values of :data:`RECORD_KEYS` (``time`` as text)."""
    data, exact = _plain_exact(data)
    for key in TEXT_KEYS:
        value = data[key]
        if type(value) is str and ("\x00" in value or len(value) > TEXT_LIMITS[key]):
            data = _storable(data)
            break
    try:
        return _encode_plain(data, time, exact)
    except UnicodeEncodeError:         # a lone surrogate (from a token's claims, say)
        return _encode_plain(_storable(data), time, exact)


def _encode_plain(d: dict, time: datetime, exact: bool) -> EncodedRecord:
    """:func:`_encoded` for plain, storable ``d`` (the runs spelled out: this runs
    for every decision; tested against :func:`canonical_json`)."""
    dump = _dump
    members = (
        dump({"action": d["action"], "action_attributes": d["action_attributes"],
              "caller": d["caller"], "claims": d["claims"], "context": d["context"],
              "decision": d["decision"], "decision_id": d["decision_id"]}, exact)[1:-1],
        dump({"errors": d["errors"], "evaluation_us": d["evaluation_us"]}, exact)[1:-1],
        dump({"policies": d["policies"], "policy_set": d["policy_set"],
              "policy_version": d["policy_version"], "reasons": d["reasons"],
              "redacted": d["redacted"], "resource_attributes": d["resource_attributes"],
              "resource_id": d["resource_id"], "resource_type": d["resource_type"]},
             exact)[1:-1],
        dump({"subject": d["subject"], "time": d["time"]}, exact)[1:-1])
    redacted, action_attributes = d["redacted"], d["action_attributes"]
    resource_attributes = d["resource_attributes"]   # None: "null", without a call
    row = (d["caller"], d["policy_set"], d["policy_version"], d["subject"], d["action"],
           d["resource_type"], d["resource_id"], d["decision"],
           dump(d["claims"], exact).decode(),
           dump(redacted, exact).decode(),
           "null" if action_attributes is None else dump(action_attributes, exact).decode(),
           "null" if resource_attributes is None else dump(resource_attributes, exact).decode(),
           dump(d["context"], exact).decode(), dump(d["policies"], exact).decode(),
           dump(d["reasons"], exact).decode(), dump(d["errors"], exact).decode(),
           d["evaluation_us"])
    return EncodedRecord(d["decision_id"], time, d["time"], members, row,
                         tuple(d["policies"] or ()))


def encode_record(outcome: Any, input: Any, *, redact: Iterable[str] = ()) -> EncodedRecord:
    """:func:`build_record`'s record, encoded (:class:`EncodedRecord`): the same
    values and the same bytes, without building the :class:`AuditRecord` first.
    Values that are not plain JSON (a tuple, a ``datetime``, a number key, NaN) are
    converted exactly as :func:`canonical_json` converts them."""
    claims = outcome.claims or {}
    redacted: list[str] = []
    if redact:
        claims, redacted = redact_claims(dict(claims), redact)
    time = _ms(outcome.time)
    data = {
        "action": input.action,
        "action_attributes": input.action_attributes or None,
        "caller": outcome.caller, "claims": claims, "context": outcome.context or {},
        "decision": outcome.decision, "decision_id": outcome.decision_id,
        "errors": list(outcome.errors), "evaluation_us": int(outcome.evaluation_us),
        "policies": list(outcome.policies), "policy_set": outcome.policy_set,
        "policy_version": int(outcome.policy_version), "reasons": list(outcome.reasons),
        "redacted": redacted, "resource_attributes": input.resource_attributes or None,
        "resource_id": input.resource_id, "resource_type": input.resource_type,
        "subject": _subject_id(claims), "time": format_time(time)}
    return _encoded(data, time)
