"""The admin API of policy sets and their versions (role ``admin``).

==========================================================  ===========================
``GET  /v1/policy-sets``                                    sets, active and latest version
``POST /v1/policy-sets/{set}/check``                        dry run: compile, store nothing
``POST /v1/policy-sets/{set}/versions``                     publish (optionally activate)
``GET  /v1/policy-sets/{set}/versions``                     the versions of a set
``GET  /v1/policy-sets/{set}/versions/{n}``                 one version: sources, policies
``POST /v1/policy-sets/{set}/versions/{n}/activate``        activate (rollback: an older n)
==========================================================  ===========================

The views only translate: HTTP in (strict JSON, schemas), a use case of
:mod:`pdp.service.policies`, a response schema out. A key restricted to some
policy sets sees and touches only those.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from flask import Blueprint, url_for

from pdp.api.auth import current_caller, require_role
from pdp.api.context import services
from pdp.api.json import read_object
from pdp.api.schemas import (
    ActivateRequest,
    ActivationOut,
    CheckOut,
    CheckRequest,
    PolicySetListOut,
    PublishOut,
    PublishRequest,
    VersionDetailOut,
    VersionListOut,
    load,
)
from pdp.errors import PdpError, RequestError
from pdp.service import policies
from pdp.store.policies import validate_set_name

log = logging.getLogger(__name__)

bp = Blueprint("policies", __name__, url_prefix="/v1/policy-sets")

#: Version numbers in URLs: beyond a 32-bit integer no version exists (404).
VERSION = "<int(max=2147483647):number>"


@bp.get("")
@require_role("admin")
def list_policy_sets():
    caller = current_caller()
    sets = [s for s in policies.list_policy_sets(services().db) if caller.may_use(s.name)]
    return PolicySetListOut().dump({"policy_sets": sets})


@bp.post("/<set_name>/check")
@require_role("admin")
def check_policy_set(set_name: str):
    _valid_set_name(set_name)
    files = _load_files(CheckRequest())["files"]
    result = policies.check(files, max_data_bytes=services().settings.max_data_bytes)
    return CheckOut().dump({"ok": True, "policies": len(result.policy_ids),
                            "policy_ids": result.policy_ids,
                            "content_hash": result.content_hash, "files": result.files})


@bp.post("/<set_name>/versions")
@require_role("admin")
def publish_version(set_name: str):
    name = _valid_set_name(set_name)
    body = _load_files(PublishRequest())
    app = services()
    result = policies.publish(
        app.db, body["files"], published_by=current_caller().name, policy_set=name,
        activate=body["activate"], base_version=body["base_version"],
        max_data_bytes=app.settings.max_data_bytes)
    if result.activated:
        _refresh_active()
    out = PublishOut().dump({**asdict(result.version), "created": result.created,
                             "unchanged": result.unchanged, "activated": result.activated})
    location = url_for(".get_version", set_name=name, number=result.version.number)
    return out, 201 if result.created else 200, {"Location": location}


@bp.get("/<set_name>/versions")
@require_role("admin")
def list_versions(set_name: str):
    name = _valid_set_name(set_name)
    versions = policies.list_versions(services().db, name)
    return VersionListOut().dump({"policy_set": name, "versions": versions})


@bp.get(f"/<set_name>/versions/{VERSION}")
@require_role("admin")
def get_version(set_name: str, number: int):
    name = _valid_set_name(set_name)
    shown = policies.show_version(services().db, number, name)
    return VersionDetailOut().dump({**asdict(shown.version), "files": dict(shown.files),
                                    "policies": list(shown.policies)})


@bp.post(f"/<set_name>/versions/{VERSION}/activate")
@require_role("admin")
def activate_version(set_name: str, number: int):
    name = _valid_set_name(set_name)
    load(_ACTIVATEREQUEST, _body(optional=True))
    result = policies.activate(services().db, number, activated_by=current_caller().name,
                               policy_set=name)
    if result.changed:
        _refresh_active()
    return ActivationOut().dump({**asdict(result.version), "changed": result.changed,
                                 "previous_version": result.previous})


# --------------------------------------------------------------------------- helpers

def _valid_set_name(name: str) -> str:
    try:
        return validate_set_name(name)
    except PdpError as exc:
        raise RequestError(exc.message, field="set", code="invalid_policy_set_name") from None


def _body(*, large: bool = False, optional: bool = False) -> dict:
    """The request body, strictly read; ``large`` for bodies carrying policy sets."""
    options = services().options
    return read_object(max_bytes=options.max_publish_bytes if large else options.max_body_bytes,
                       max_depth=options.max_json_depth, optional=optional)


def _load_files(schema) -> dict:
    """A body carrying ``files`` (publish, check), the file count checked first."""
    body = _body(large=True)
    files, limit = body.get("files"), services().options.max_policy_files
    if isinstance(files, dict) and len(files) > limit:
        raise RequestError(f"files: {len(files)} files; at most {limit} may be sent at once",
                           field="files", code="too_many_files")
    return load(schema, body)


def _refresh_active() -> None:
    """Serve a version activated through this replica at once (the others follow
    through NOTIFY or polling). The activation is committed: a failure here is only
    logged, the watcher catches up."""
    try:
        services().active.refresh()
    except Exception:
        log.exception("refreshing the active policy versions after an activation failed")


# Schemas are built once: building one costs more than the validation itself.
_ACTIVATEREQUEST = ActivateRequest()
