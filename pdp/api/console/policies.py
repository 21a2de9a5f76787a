"""``/console/policies``: policy sets, their versions (who published them, when, the
content hash, which one is active), each version's source, a diff between any two
versions, and activation or rollback behind a confirmation step.

=====================================================  ==========================  =======
``GET  /console/policies``                             ``console.policy_sets``     reader
``GET  /console/policies/<set>``                       ``console.policy_set``      reader
``GET  /console/policies/<set>/versions/<n>``          ``console.policy_version``  reader
``GET  /console/policies/<set>/diff?from=a&to=b``      ``console.policy_diff``     reader
``GET  /console/policies/<set>/versions/<n>/activate`` ``console.confirm_activation`` admin
``POST /console/policies/<set>/versions/<n>/activate`` ``console.activate``        admin
=====================================================  ==========================  =======

Readers are any console session (``auditor`` or ``admin``). The POST is checked for
its CSRF token by :mod:`.session` before the view runs. A key restricted to some
policy sets sees and touches only those, as in the JSON admin API.

The views only read through and act through :mod:`pdp.service.policies`; every
value reaches the page through Jinja's autoescaping.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from pdp.api.console import render
from pdp.api.console.render import source_lines
from pdp.api.console.session import bp, current_session, error_page, page
from pdp.api.context import services
from pdp.errors import Forbidden, NotFound, PdpError
from pdp.service import policies
from pdp.store.models import ApiKeyRow
from pdp.store.policies import validate_set_name

log = logging.getLogger(__name__)

#: A version number in a URL is read by the view (:func:`_number`), so that a
#: malformed one gets the console's 404 page rather than the app's JSON one.
VERSION = "<number>"
_NUMBER = re.compile(r"[0-9]{1,10}")
_MAX_VERSION = 2147483647


# --------------------------------------------------------------------------- pages

@bp.get("/policies")
@page()
def policy_sets():
    allowed = _allowed_sets()
    sets = [s for s in policies.list_policy_sets(services().db)
            if allowed is None or s.name in allowed]
    return render_template("console/policies.html", nav="policies", sets=sets, when=when)


@bp.get("/policies/<set_name>")
@page()
def policy_set(set_name: str):
    name = _set_name(set_name)
    db = services().db
    versions = policies.list_versions(db, name)
    history = policies.activation_history(db, name)
    active = next((v.number for v in versions if v.active), None)
    activated = _activated_message(request.args.get("activated"), active,
                                   request.args.get("unchanged") == "1")
    versions = sorted(versions, key=lambda v: v.number, reverse=True)
    latest = versions[0].number if versions else None
    previous = next((v.number for v in versions if v.number != latest), latest)
    return render_template(
        "console/policy_set.html", nav="policies", set_name=name, versions=versions,
        active=active, latest=latest, history=list(reversed(history)),
        activated=activated, may_activate=_is_admin(), when=when,
        diff_from=active if active is not None and active != latest else previous,
        diff_to=latest)


@bp.get(f"/policies/<set_name>/versions/{VERSION}")
@page()
def policy_version(set_name: str, number: str):
    name, number = _set_name(set_name), _number(set_name, number)
    shown = policies.show_version(services().db, number, name)
    key = (name, number, shown.version.content_hash)
    spans = (render.versions.get(key) or render.versions.put(key, shown.files)).spans
    highlight = request.args.get("highlight", "")[:300]
    files = []
    for path in sorted(shown.files):
        file_spans = [s for s in spans.values() if s.path == path]
        files.append({"path": path,
                      "lines": source_lines(shown.files[path], file_spans,
                                            highlight=[highlight] if highlight else ()),
                      "policies": sorted((s for s in file_spans),
                                         key=lambda s: s.first_line)})
    metadata = {p.get("id"): p for p in shown.policies}
    return render_template(
        "console/policy_version.html", nav="policies", set_name=name,
        version=shown.version, files=files, spans=spans, metadata=metadata,
        highlight=highlight, highlight_missing=bool(highlight) and highlight not in spans,
        may_activate=_is_admin(), when=when)


@bp.get("/policies/<set_name>/diff")
@page()
def policy_diff(set_name: str):
    name = _set_name(set_name)
    db = services().db
    versions = policies.list_versions(db, name)          # unknown set: 404 first
    old = _version_parameter("from", name, versions)
    new = _version_parameter("to", name, versions)
    if isinstance(old, tuple):
        return error_page(*old)
    if isinstance(new, tuple):
        return error_page(*new)
    diff = policies.diff_versions(db, old, new, name)
    by_number = {v.number: v for v in versions}
    return render_template(
        "console/policy_diff.html", nav="policies", set_name=name, diff=diff,
        lines=diff_lines(diff.unified), old=by_number[old], new=by_number[new],
        versions=sorted(versions, key=lambda v: v.number, reverse=True), when=when)


@bp.get(f"/policies/<set_name>/versions/{VERSION}/activate")
@page("admin")
def confirm_activation(set_name: str, number: str):
    name, number = _set_name(set_name), _number(set_name, number)
    db = services().db
    versions = {v.number: v for v in policies.list_versions(db, name)}
    target = versions.get(number)
    if target is None:
        raise NotFound(f"policy set {name!r} has no version {number}",
                       code="version_not_found")
    active = next((v for v in versions.values() if v.active), None)
    if active is None:
        summary = {"added": tuple(target.policy_ids), "removed": (), "changed": (),
                   "files": None}
    elif active.number == number:
        summary = {"added": (), "removed": (), "changed": (), "files": None}
    else:
        diff = policies.diff_versions(db, active.number, number, name)
        summary = {"added": diff.added, "removed": diff.removed, "changed": diff.changed,
                   "files": diff}
    return render_template(
        "console/confirm_activation.html", nav="policies", set_name=name, target=target,
        active=active, summary=summary, when=when,
        rollback=active is not None and number < active.number)


@bp.post(f"/policies/<set_name>/versions/{VERSION}/activate")
@page("admin")
def activate(set_name: str, number: str):
    name, number = _set_name(set_name), _number(set_name, number)
    session = current_session()
    result = policies.activate(services().db, number,
                               activated_by=f"console:{session.key_name}", policy_set=name)
    if result.changed:
        log.info("console: %s activated %s version %d (was %s)", session.key_name, name,
                 number, result.previous)
        _refresh_active()
    args = {"activated": number} if result.changed else {"activated": number, "unchanged": 1}
    return redirect(url_for("console.policy_set", set_name=name, **args), 303)


# --------------------------------------------------------------------------- helpers

def when(value: datetime | None) -> str:
    """A stored time as UTC text (naive values are UTC)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def diff_lines(unified: str) -> list[tuple[str, str]]:
    """``(css class, text)`` for each line of a unified diff."""
    out: list[tuple[str, str]] = []
    for line in unified.splitlines():
        if line.startswith(("+++ ", "--- ")) or line in ("+++", "---"):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("\\"):
            kind = "note"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def _is_admin() -> bool:
    session = current_session()
    return session is not None and session.has_role("admin")


def _allowed_sets() -> frozenset[str] | None:
    """The sets the signed-in key may use (``None``: every set), read from the key
    now, so that narrowing a key applies to open sessions too."""
    session = current_session()
    with services().db.read() as s:
        row = s.execute(select(ApiKeyRow.policy_sets)
                        .where(ApiKeyRow.name == session.key_name)).first()
    if row is None:
        return frozenset()
    return None if row[0] is None else frozenset(row[0])


def _set_name(raw: str) -> str:
    """A set the key may see: an impossible name is simply not found."""
    try:
        name = validate_set_name(raw)
    except PdpError:
        raise NotFound(f"no policy set named {raw[:200]!r}",
                       code="policy_set_not_found") from None
    allowed = _allowed_sets()
    if allowed is not None and name not in allowed:
        raise Forbidden(f"the key {current_session().key_name!r} may not use the "
                        f"policy set {name!r}", code="forbidden")
    return name


def _number(set_name: str, raw: str) -> int:
    """A version number from a URL: anything else is a version that does not exist."""
    if not _NUMBER.fullmatch(raw) or int(raw) > _MAX_VERSION:
        raise NotFound(f"policy set {set_name!r} has no version {raw[:40]!r}",
                       code="version_not_found")
    return int(raw)


def _version_parameter(param: str, set_name: str, versions) -> int | tuple[int, str, str]:
    """The version number in query parameter ``param``, or an error page's
    ``(status, code, message)`` naming it."""
    raw = request.args.get(param, "").strip()
    if not raw:
        return 400, "missing_parameter", f"{param}: choose a version to compare"
    if not _NUMBER.fullmatch(raw) or int(raw) > _MAX_VERSION:
        return 400, "invalid_parameter", f"{param}: {raw[:40]!r} is not a version number"
    number = int(raw)
    if number not in {v.number for v in versions}:
        return (404, "version_not_found",
                f"{param}: policy set {set_name!r} has no version {number}")
    return number


def _activated_message(raw: str | None, active: int | None, unchanged: bool) -> str | None:
    if not raw or not _NUMBER.fullmatch(raw) or int(raw) != active:
        return None
    if unchanged:
        return f"Version {active} was already the active version; nothing changed."
    return f"Version {active} is now the active version."


def _refresh_active() -> None:
    """Serve the activated version from this replica at once (the others follow
    through NOTIFY or polling); a failure is only logged, the watcher catches up."""
    try:
        services().active.refresh()
    except Exception:
        log.exception("refreshing the active policy versions after a console activation "
                      "failed")
