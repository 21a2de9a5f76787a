"""What the console's templates need besides escaping: policy source as numbered
lines with the lines of chosen policies marked, where each policy sits in its
file, and JSON shown readably. Jinja autoescapes every value these return."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pdp.lang.parser import parse_module

POLICY_SUFFIX = ".policy"


@dataclass(frozen=True, slots=True)
class PolicySpan:
    """Where a policy is written: its file and first and last lines (1-based)."""

    policy_id: str
    path: str
    first_line: int
    last_line: int


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    text: str
    #: The line belongs to a highlighted policy.
    highlighted: bool = False
    #: Ids of the policies that start on this line (anchors ``policy-<id>``).
    anchors: tuple[str, ...] = ()


def policy_spans(files: Mapping[str, str]) -> dict[str, PolicySpan]:
    """Every policy of the ``.policy`` files, by id (files that no longer parse
    give what could be parsed)."""
    spans: dict[str, PolicySpan] = {}
    for path in sorted(files):
        if not path.endswith(POLICY_SUFFIX):
            continue
        module, _ = parse_module(files[path], path)
        for policy in module.policies:
            spans.setdefault(policy.id, PolicySpan(policy.id, path, policy.line,
                                                   max(policy.end_line, policy.line)))
    return spans


@dataclass(frozen=True, slots=True)
class ParsedVersion:
    """A version's files and where each of its policies is written."""

    files: Mapping[str, str]
    spans: Mapping[str, PolicySpan]


class VersionCache:
    """Parsed versions by (set, number, content hash), bounded, shared by threads.
    Versions are immutable, so an entry never goes stale; the content hash in the
    key keeps a store that was emptied and refilled (tests) from hitting old ones."""

    def __init__(self, size: int = 32):
        self._size = size
        self._entries: OrderedDict[tuple[str, int, str], ParsedVersion] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, str]) -> ParsedVersion | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def put(self, key: tuple[str, int, str], files: Mapping[str, str]) -> ParsedVersion:
        """Parse ``files`` (outside the lock) and keep the result."""
        entry = ParsedVersion(dict(files), policy_spans(files))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry


#: The one cache of the console's pages (a decision's sources, a version's page).
versions = VersionCache()


def source_lines(text: str, spans: Iterable[PolicySpan] = (), *,
                 highlight: Iterable[str] = ()) -> list[Line]:
    """``text`` as numbered lines; lines inside the spans of the policy ids in
    ``highlight`` are marked, and each span's first line carries its anchor."""
    wanted = set(highlight)
    spans = list(spans)
    marked: set[int] = set()
    anchors: dict[int, list[str]] = {}
    for span in spans:
        anchors.setdefault(span.first_line, []).append(span.policy_id)
        if span.policy_id in wanted:
            marked.update(range(span.first_line, span.last_line + 1))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [Line(n, line, n in marked, tuple(anchors.get(n, ())))
            for n, line in enumerate(lines, start=1)]


def pretty_json(value: Any) -> str:
    """A JSON document indented for reading (non-ASCII kept as is)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
