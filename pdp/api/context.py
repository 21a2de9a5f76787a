"""What :func:`pdp.api.create_app` builds and hands to the blueprints.

One :class:`Services` object per app, in ``app.extensions["pdp"]``; views reach it
through :func:`services`. Nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from flask import Flask, current_app

from pdp.config import Settings
from pdp.service.active import ActivePolicies
from pdp.store.db import Database

if TYPE_CHECKING:
    from pdp.api.auth import Authenticator
    from pdp.service.decisions import DecisionService

EXTENSION = "pdp"


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Limits and timings of the HTTP layer.

    Read from :class:`~pdp.config.Settings` by :meth:`from_settings`; a field the
    settings do not (yet) have keeps its default here. Environment variables:
    ``PDP_MAX_BODY_BYTES``, ``PDP_MAX_PUBLISH_BYTES``, ``PDP_MAX_JSON_DEPTH``,
    ``PDP_MAX_POLICY_FILES``, ``PDP_AUTH_CACHE_TTL``, ``PDP_MAX_BATCH_CHECKS``.
    """

    #: Largest request body, in bytes (413 above it) …
    max_body_bytes: int = 1024 * 1024
    #: … except on publish and check, whose bodies carry whole policy sets
    #: (from settings: :func:`default_publish_bytes` of ``max_data_bytes``).
    max_publish_bytes: int = 16 * 1024 * 1024
    #: Deepest nesting of objects and arrays in a body (400 ``too_deep`` beyond).
    max_json_depth: int = 32
    #: Most files one publish or check may carry.
    max_policy_files: int = 1000
    #: Seconds an authenticated (or refused) key is remembered; 0 disables the cache.
    auth_cache_ttl: float = 5.0
    #: Most checks in one ``POST /v1/decide/batch`` (400 naming ``checks`` beyond).
    max_batch_checks: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiOptions:
        given = {f.name: getattr(settings, f.name) for f in fields(cls)
                 if getattr(settings, f.name, None) is not None}
        given.setdefault("max_publish_bytes", default_publish_bytes(settings.max_data_bytes))
        return cls(**given)


def default_publish_bytes(max_data_bytes: int) -> int:
    """Room for the reference data (escaped inside JSON strings it may double) and
    4 MiB of policies; never under 16 MiB."""
    return max(16 * 1024 * 1024, 2 * max_data_bytes + 4 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Services:
    """The wired objects the views use."""

    settings: Settings
    options: ApiOptions
    db: Database
    active: ActivePolicies
    authenticator: Authenticator
    #: Deciding (:mod:`pdp.service.decisions`); set by :func:`pdp.api.create_app`.
    decisions: DecisionService | None = None


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions[EXTENSION]
