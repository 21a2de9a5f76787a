"""Use cases of the policy store: publish, activate, list, show, diff.

Each function owns its transaction (through :meth:`Database.write` or
:meth:`Database.read`) and returns frozen records from :mod:`pdp.store.policies`.

Publishing compiles first, outside any transaction: a set with any error is refused
whole with a :class:`~pdp.errors.PolicyError` carrying every diagnostic, and nothing
is written. Then, under a lock on the set's row, it either finds that the latest
version already has this content (returned, ``created=False``) or adds version
``latest + 1``. Versions are numbered without gaps because the number is taken
under that lock and is unique per set; should two publishers still collide, the
loser retries.
"""

from __future__ import annotations

import difflib
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy.exc import IntegrityError

from pdp.config import DEFAULT_MAX_DATA_BYTES
from pdp.engine.compiler import compile_policies, read_policy_dir  # noqa: F401 (re-exported)
from pdp.engine.policyset import PolicySet
from pdp.errors import Conflict, Diagnostic, NotFound, PdpError, PolicyError
from pdp.store import policies as repo
from pdp.store.db import Database
from pdp.store.models import utcnow
from pdp.store.policies import (
    ActivationInfo,
    PolicySetInfo,
    VersionInfo,
    content_hash,
    validate_set_name,
)

DEFAULT_SET = "default"
#: Attempts at a publish that lost a race on the version number.
PUBLISH_ATTEMPTS = 8
MAX_PATH_LENGTH = 1024
#: Versions were within the data limit when published: never refuse them when reloaded.
_NO_LIMIT = 2**62

__all__ = [
    "DEFAULT_SET", "ActivationInfo", "ActivationResult", "CheckResult", "PolicySetInfo",
    "PublishResult", "VersionDiff", "VersionInfo", "VersionSources", "activate",
    "activation_history", "check", "content_hash", "diff_versions", "get_version",
    "list_policy_sets", "list_versions", "publish", "read_policy_dir", "show_version",
]


# --------------------------------------------------------------------------- results

@dataclass(frozen=True, slots=True)
class CheckResult:
    """A policy set that compiles: what publishing it would store."""

    content_hash: str
    policy_ids: tuple[str, ...]
    files: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"content_hash": self.content_hash, "policies": list(self.policy_ids),
                "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class PublishResult:
    version: VersionInfo
    #: ``False`` when the content equals the latest version's, which is returned.
    created: bool
    #: ``True`` when this call changed the active version.
    activated: bool

    @property
    def unchanged(self) -> bool:
        return not self.created

    def to_dict(self) -> dict:
        return {**self.version.to_dict(), "created": self.created,
                "unchanged": self.unchanged, "activated": self.activated}


@dataclass(frozen=True, slots=True)
class ActivationResult:
    version: VersionInfo
    #: ``False`` when the version was already the active one.
    changed: bool
    previous: int | None

    def to_dict(self) -> dict:
        return {**self.version.to_dict(), "changed": self.changed,
                "previous_version": self.previous}


@dataclass(frozen=True, slots=True)
class VersionSources:
    version: VersionInfo
    files: Mapping[str, str]
    #: The engine's metadata of each policy (id, effect, actions, resource_types,
    #: reason, annotations, file, line), read from the stored compiled form, by id.
    policies: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        return {**self.version.to_dict(), "files": dict(self.files),
                "policy_metadata": [dict(p) for p in self.policies]}


@dataclass(frozen=True, slots=True)
class VersionDiff:
    policy_set: str
    old: int
    new: int
    #: A unified diff of the sources (``a/<path>`` → ``b/<path>``), "" if equal.
    unified: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    files_added: tuple[str, ...]
    files_removed: tuple[str, ...]
    files_changed: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"policy_set": self.policy_set, "from": self.old, "to": self.new,
                "diff": self.unified,
                "policies": {"added": list(self.added), "removed": list(self.removed),
                             "changed": list(self.changed)},
                "files": {"added": list(self.files_added),
                          "removed": list(self.files_removed),
                          "changed": list(self.files_changed)}}


# --------------------------------------------------------------------------- files

def is_policy_file(path: str) -> bool:
    """``*.policy`` anywhere, or ``data/**/*.json``."""
    p = PurePosixPath(path)
    return p.suffix == ".policy" or (len(p.parts) > 1 and p.parts[0] == "data"
                                     and p.suffix == ".json")


def _file_problems(files: Mapping[str, str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for path, content in files.items():
        if not isinstance(path, str) or not isinstance(content, str):
            out.append(Diagnostic("invalid_file", "path and content must be text", str(path)))
            continue
        parts = path.split("/")
        if (not path or len(path) > MAX_PATH_LENGTH or path.startswith("/") or "\\" in path
                or "\x00" in path or any(p in ("", ".", "..") or p.startswith(".")
                                         for p in parts)):
            out.append(Diagnostic(
                "invalid_path", "a file path must be relative, with '/' separators and "
                "no empty, '.', '..' or hidden parts", path))
        elif not is_policy_file(path):
            out.append(Diagnostic(
                "unexpected_file", "a policy set holds only '*.policy' files and "
                "'data/**/*.json' reference data", path))
    return out


def _compile(files: Mapping[str, str], max_data_bytes: int) -> PolicySet:
    """The compiled policy set, or a :class:`PolicyError` with every problem
    (reference data over ``max_data_bytes`` in total is one of them)."""
    problems = _file_problems(files)
    if problems:
        raise PolicyError(problems)
    if not any(p.endswith(".policy") for p in files):
        raise PdpError("nothing to publish: no '.policy' files", code="empty_policy_set")
    return compile_policies(dict(files), max_data_bytes=max_data_bytes)


def _policy_ids(policy_set: PolicySet) -> list[str]:
    return sorted(_get(p, "id") for p in policy_set.policies)


def _get(metadata, name: str):
    """A field of the engine's policy metadata (a mapping, or an object)."""
    return metadata[name] if isinstance(metadata, Mapping) else getattr(metadata, name)


# --------------------------------------------------------------------------- use cases

def check(files: Mapping[str, str], *,
          max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> CheckResult:
    """Compile ``files`` without storing anything (the dry run)."""
    compiled = _compile(files, max_data_bytes)
    return CheckResult(content_hash(files), tuple(_policy_ids(compiled)), tuple(sorted(files)))


def publish(db: Database, files: Mapping[str, str], *, published_by: str,
            policy_set: str = DEFAULT_SET, activate: bool = False,
            base_version: int | None = None,
            max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> PublishResult:
    """Store ``files`` as the next version of ``policy_set``.

    * any compile error → :class:`PolicyError` (nothing stored);
    * ``base_version`` given and the latest version is not it → :class:`Conflict`
      (``0`` means "the set has no version yet");
    * same content as the latest version → that version, ``created=False``;
    * ``activate`` → the version (new or not) becomes the active one, in the same
      transaction.
    """
    validate_set_name(policy_set)
    if base_version is not None and base_version < 0:
        raise PdpError("base version must be 0 or more", code="invalid_base_version")
    files = dict(files)
    compiled = _compile(files, max_data_bytes)
    blob = compiled.to_bytes()
    digest = content_hash(files)
    ids = _policy_ids(compiled)

    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            with db.write() as session:
                now = utcnow()
                set_row = repo.lock_set(session, policy_set, now=now)
                latest = repo.latest_version(session, set_row)
                latest_number = latest.number if latest is not None else 0
                if base_version is not None and latest_number != base_version:
                    raise Conflict(
                        f"policy set {policy_set!r} is at version {latest_number}, "
                        f"not {base_version}: fetch it and publish again",
                        code="version_conflict")
                if latest is not None and latest.content_hash == digest:
                    version, created = latest, False
                else:
                    version = repo.add_version(
                        session, set_row, number=latest_number + 1, files=files,
                        compiled=blob, content_hash=digest, policy_ids=ids,
                        published_by=published_by, published_at=now)
                    created = True
                activated = False
                if activate and set_row.active_version != version.number:
                    repo.set_active(session, set_row, version, activated_by=published_by,
                                    now=now)
                    activated = True
                return PublishResult(repo.version_info(set_row, version), created, activated)
        except IntegrityError:
            if attempt == PUBLISH_ATTEMPTS:
                raise Conflict(f"could not publish to {policy_set!r}: too much contention, "
                               "try again", code="publish_contention") from None
            time.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")


def activate(db: Database, number: int, *, activated_by: str,
             policy_set: str = DEFAULT_SET) -> ActivationResult:
    """Make version ``number`` the active one (rollback = an older number).

    Activating the version that is already active changes nothing.
    """
    with db.write() as session:
        now = utcnow()
        set_row = repo.find_set(session, policy_set, for_update=True)
        if set_row is None:
            raise _no_set(policy_set)
        version = repo.find_version(session, policy_set, number)
        if version is None:
            raise NotFound(f"policy set {policy_set!r} has no version {number}",
                           code="version_not_found")
        previous = set_row.active_version
        changed = previous != number
        if changed:
            repo.set_active(session, set_row, version, activated_by=activated_by, now=now)
        return ActivationResult(repo.version_info(set_row, version), changed, previous)


def list_policy_sets(db: Database) -> list[PolicySetInfo]:
    with db.read() as session:
        return repo.list_sets(session)


def list_versions(db: Database, policy_set: str = DEFAULT_SET) -> list[VersionInfo]:
    with db.read() as session:
        set_row = _set(session, policy_set)
        return [repo.version_info(set_row, v) for v in repo.list_versions(session, set_row)]


def get_version(db: Database, number: int, policy_set: str = DEFAULT_SET) -> VersionInfo:
    with db.read() as session:
        set_row, version = _version(session, policy_set, number)
        return repo.version_info(set_row, version)


def show_version(db: Database, number: int, policy_set: str = DEFAULT_SET, *,
                 with_policies: bool = True) -> VersionSources:
    """A version with its sources and reference data and (``with_policies``) the
    metadata of its policies, from its compiled form."""
    with db.read() as session:
        set_row, version = _version(session, policy_set, number, with_compiled=with_policies)
        info = repo.version_info(set_row, version)
        files = repo.files_of(session, version)
        compiled = version.compiled if with_policies else None
    policies: tuple[dict, ...] = ()
    if compiled is not None:
        try:
            loaded = PolicySet.from_bytes(compiled)
        except PdpError:      # compiled by an incompatible release: compile the sources
            loaded = compile_policies(files, max_data_bytes=_NO_LIMIT)
        policies = tuple(sorted((dict(p) for p in loaded.policies), key=lambda p: p["id"]))
    return VersionSources(info, files, policies)


def activation_history(db: Database, policy_set: str = DEFAULT_SET) -> list[ActivationInfo]:
    with db.read() as session:
        return repo.list_activations(session, _set(session, policy_set))


def diff_versions(db: Database, old: int, new: int,
                  policy_set: str = DEFAULT_SET) -> VersionDiff:
    """What changed from version ``old`` to version ``new``: a unified diff of the
    sources, and which policy ids were added, removed or changed (a policy
    changed when its parsed form differs, positions aside: moving or re-indenting
    a policy does not change it)."""
    a = show_version(db, old, policy_set, with_policies=False)
    b = show_version(db, new, policy_set, with_policies=False)
    fa, fb = a.files, b.files
    chunks: list[str] = []
    for path in sorted(set(fa) | set(fb)):
        if fa.get(path) == fb.get(path):
            continue
        chunks.extend(difflib.unified_diff(
            _lines(fa.get(path)), _lines(fb.get(path)),
            fromfile=f"a/{path}" if path in fa else "/dev/null",
            tofile=f"b/{path}" if path in fb else "/dev/null"))
    pa, pb = _policy_fingerprints(fa), _policy_fingerprints(fb)
    return VersionDiff(
        policy_set=policy_set, old=old, new=new, unified="".join(chunks),
        added=tuple(sorted(set(pb) - set(pa))),
        removed=tuple(sorted(set(pa) - set(pb))),
        changed=tuple(sorted(i for i in set(pa) & set(pb) if pa[i] != pb[i])),
        files_added=tuple(sorted(set(fb) - set(fa))),
        files_removed=tuple(sorted(set(fa) - set(fb))),
        files_changed=tuple(sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p])))


# --------------------------------------------------------------------------- helpers

def _no_set(name: str) -> NotFound:
    return NotFound(f"no policy set named {name!r}", code="policy_set_not_found")


def _set(session, name: str):
    row = repo.find_set(session, name)
    if row is None:
        raise _no_set(name)
    return row


def _version(session, policy_set: str, number: int, *, with_compiled: bool = False):
    set_row = _set(session, policy_set)
    version = repo.find_version(session, policy_set, number, with_compiled=with_compiled)
    if version is None:
        raise NotFound(f"policy set {policy_set!r} has no version {number}",
                       code="version_not_found")
    return set_row, version


def _lines(text: str | None) -> list[str]:
    if text is None:
        return []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


_POSITION_KEYS = frozenset({"file", "line", "column", "id_line", "id_column",
                            "effect_line", "effect_column", "end_line"})


def _strip_positions(data):
    if isinstance(data, list):
        return [_strip_positions(x) for x in data]
    if isinstance(data, dict) and "@" in data:
        return {k: _strip_positions(v) for k, v in data.items() if k not in _POSITION_KEYS}
    return data


def _policy_fingerprints(files: Mapping[str, str]) -> dict[str, str]:
    """``{policy id: canonical text of its parsed form without positions}``."""
    from pdp.lang import ast
    from pdp.lang.parser import parse_module

    out: dict[str, str] = {}
    for path in sorted(files):
        if not path.endswith(".policy"):
            continue
        module, _ = parse_module(files[path], path)
        for policy in module.policies:
            out[policy.id] = json.dumps(_strip_positions(ast.to_data(policy)),
                                        sort_keys=True, default=repr)
    return out
