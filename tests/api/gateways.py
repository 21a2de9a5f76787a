"""What the real-gateway tests (nginx, Envoy) share: an upstream that records what
reaches it, the policies and key a gateway uses, and end-user tokens."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt

from pdp.service import keys, policies
from pdp.store.db import Database

ROOT = Path(__file__).resolve().parents[2]
#: The HS256 secret of the test tokens (PDP_JWT_HS_SECRET of the pdp under test).
SECRET = "gateway-tests-hmac-secret-of-32-bytes-or-more"
#: The environment of the pdp behind the gateway.
PDP_ENV = {"PDP_JWT_HS_SECRET": SECRET, "PDP_GATEWAY_SUBJECT_HEADERS": "1"}


class Upstream:
    """An HTTP server that records every request it receives and answers 200."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                upstream.requests.append((self.command, self.path, dict(self.headers)))
                body = b"upstream ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def seed_gateway(store: Database, key_name: str) -> str:
    """Publish policies/gateway.policy (set ``default``) and an allow-all set
    ``open``; return a new ``decide`` key for the gateway."""
    policies.publish(store, {"gateway.policy": (ROOT / "policies" / "gateway.policy")
                             .read_text(encoding="utf-8")}, published_by="tests", activate=True)
    policies.publish(store, {"open.policy": 'policy "open" {\n  permit * on *\n}\n'},
                     policy_set="open", published_by="tests", activate=True)
    return keys.create_key(store, name=key_name, roles=("decide",), created_by="tests").secret


def bearer(sub="alice", roles=("user",)) -> dict:
    """An ``Authorization`` header with a valid end-user token."""
    token = jwt.encode({"sub": sub, "roles": list(roles), "exp": time.time() + 300},
                       SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}
