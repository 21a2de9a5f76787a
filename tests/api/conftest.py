"""Fixtures of the HTTP API tests: an app on each backend's store, a client that
speaks for a key, and keys with various roles.

``api`` calls as an admin; ``api.as_(key)`` as another key, ``api.as_(None)``
with no key at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdp.api import ApiOptions, create_app, services
from pdp.config import Settings
from pdp.service import keys
from pdp.store.db import Database

#: Short, so that revocation tests need not wait long.
AUTH_CACHE_TTL = 0.3
#: The limits of the tests' app: small, so that tests of the limits are quick.
OPTIONS = ApiOptions(auth_cache_ttl=AUTH_CACHE_TTL, max_publish_bytes=4 * 1024 * 1024)

DOCS = """\
@owner("team-docs")
@description("document owners")
policy "doc-owner-edit" {
  permit read, update on document
  when resource.owner == subject.sub
  reason "owners may edit their own documents"
}
"""
ADMINS = """\
policy "admins-anything" {
  permit * on *
  when "admin" in subject.roles
}
"""
FORBID_ARCHIVED = """\
policy "no-archived-writes" {
  forbid update on document
  when resource.archived == true
}
"""


class Api:
    """A Flask test client that sends one key's ``Authorization`` header."""

    def __init__(self, client: FlaskClient, key: str | None):
        self.client = client
        self.key = key

    def as_(self, key: str | None) -> Api:
        return Api(self.client, key)

    def headers(self, extra: dict | None = None) -> dict:
        headers = {} if self.key is None else {"Authorization": f"Bearer {self.key}"}
        return {**headers, **(extra or {})}

    def get(self, path: str, **kw):
        return self.client.get(path, headers=self.headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json=None, **kw):
        """``json`` sent as JSON; or ``data=`` (raw) with ``content_type=``."""
        headers = self.headers(kw.pop("headers", None))
        if json is not None:
            return self.client.post(path, json=json, headers=headers, **kw)
        return self.client.post(path, headers=headers, **kw)

    def publish(self, files: dict, set_name: str = "default", **fields):
        return self.post(f"/v1/policy-sets/{set_name}/versions", {"files": files, **fields})


def make_key(store: Database, name: str, *roles: str, policy_sets=None) -> str:
    return keys.create_key(store, name=name, roles=roles or ("admin",),
                           policy_sets=policy_sets, created_by="tests").secret


@pytest.fixture
def app(store: Database, tmp_path) -> Iterator[Flask]:
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                              audit_spill_dir=str(tmp_path / "audit-spill")),
                     store=store, options=OPTIONS)
    try:
        yield app
    finally:
        services(app).active.stop()
        writer = app.extensions.get("pdp.audit")
        if writer is not None:
            writer.close()


@pytest.fixture
def admin_key(store: Database) -> str:
    return make_key(store, "ops-admin", "admin")


@pytest.fixture
def api(app: Flask, admin_key: str) -> Api:
    return Api(app.test_client(), admin_key)
