"""Shared by the client tests: the policies, tokens and a real pdp to ask.

``pdp_server`` (module scope) is one real ``pdp serve`` (gunicorn, SQLite) with
the example documents service's policies plus a few for HTTP requests, two API
keys (``key``: role ``decide``; ``trusted_key``: also ``trusted_claims``) and the
HMAC secret its end-user tokens are signed with (:func:`token`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from pdp.service import keys, policies

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "documents-service"
SECRET = "client-tests-hmac-secret-of-32-bytes-or-more"
ENV = {"PDP_JWT_HS_SECRET": SECRET}

HTTP_POLICY = '''\
policy "http-hello" {
  permit GET on http
  when resource.path == "/hello" and has(subject.sub)
  reason "signed-in users may say hello"
}

policy "http-admin" {
  permit * on http
  when resource.path like "/admin/*"
  reason "the admin area is open to signed-in users"
}

policy "http-admin-admins-only" {
  forbid * on http
  when resource.path like "/admin/*"
  unless has(subject.roles) and "admin" in subject.roles
  reason "the admin area is for admins"
}
'''


def policy_files() -> dict[str, str]:
    return {"documents.policy": (EXAMPLE / "policies" / "documents.policy").read_text("utf-8"),
            "http.policy": HTTP_POLICY}


def token(sub: str = "alice", *, roles=(), expires_in: float = 300, secret: str = SECRET) -> str:
    return jwt.encode({"sub": sub, "roles": list(roles), "exp": int(time.time() + expires_in)},
                      secret, algorithm="HS256")


def document(doc_id: str = "d-1", owner: str = "alice", archived: bool = False) -> dict:
    return {"type": "document", "id": doc_id, "attributes": {"owner": owner, "archived": archived}}


@dataclass
class Pdp:
    url: str
    key: str
    trusted_key: str


def prepare(store) -> tuple[str, str]:
    """Publish the policies and create the two keys; ``(key, trusted_key)``."""
    policies.publish(store, policy_files(), published_by="tests", activate=True)
    key = keys.create_key(store, name="svc", roles=("decide",), created_by="tests").secret
    trusted = keys.create_key(store, name="trusted-svc", roles=("decide",),
                              trusted_claims=True, created_by="tests").secret
    return key, trusted


class SilentServer:
    """Accepts TCP connections and never answers (a pdp that hangs)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(2)
        for conn in self.accepted:
            with contextlib.suppress(OSError):
                conn.close()
        self.sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def refused_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
