"""What the real-gateway tests (nginx, Envoy) share: an upstream that records what
reaches it, the gateway's process, the policies and key a gateway uses, and
end-user tokens."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt

from pdp.service import keys, policies
from pdp.store.db import Database
from tests.live import BackgroundHTTPServer, http_request, live_server

ROOT = Path(__file__).resolve().parents[2]
#: The HS256 secret of the test tokens (PDP_JWT_HS_SECRET of the pdp under test).
SECRET = "gateway-tests-hmac-secret-of-32-bytes-or-more"
#: The environment of the pdp behind the gateway.
PDP_ENV = {"PDP_JWT_HS_SECRET": SECRET, "PDP_GATEWAY_SUBJECT_HEADERS": "1"}


class Upstream(BackgroundHTTPServer):
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

        super().__init__(Handler)


class GatewayProcess:
    """A real gateway in the foreground, listening on ``self.port`` once started.

    A subclass sets ``name``, ``port``, ``run_command`` and ``errors()``, and may
    check its configuration in ``validate()`` before it starts."""

    name = "the gateway"
    start_timeout = 10.0
    port: int
    run_command: list[str]
    process: subprocess.Popen | None = None

    def validate(self) -> None:
        pass

    def errors(self) -> str:
        return ""

    def __enter__(self):
        self.validate()
        self.process = subprocess.Popen(self.run_command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start:\n" + self.errors()) from None
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, method: str, path: str, headers: dict | None = None,
                body: bytes | None = None) -> tuple[int, dict, bytes]:
        """``(status, response headers, body)`` of one request through the gateway."""
        status, pairs, content = http_request(self.port, method, path, headers, body)
        return status, dict(pairs), content


@dataclass
class Rig:
    """A gateway started in front of an upstream, with a real pdp (gunicorn) behind it."""

    gateway: GatewayProcess
    upstream: Upstream
    #: Stops the pdp (the gateway and the upstream stay).
    stop_pdp: Callable[[], None]

    def ask(self, method: str, path: str, headers: dict | None = None,
            body: bytes | None = None) -> tuple[int, dict, bytes, list]:
        """A request through the gateway: its answer and what reached the upstream."""
        before = len(self.upstream.requests)
        status, response_headers, content = self.gateway.request(method, path, headers, body)
        return status, response_headers, content, self.upstream.requests[before:]


@contextlib.contextmanager
def gateway_rig(make_gateway: Callable[..., GatewayProcess], store: Database,
                database_url: str, key_name: str) -> Iterator[Rig]:
    """Seed the store (:func:`seed_gateway`), start an :class:`Upstream`, a pdp on
    ``database_url`` and ``make_gateway(upstream=port, pdp=port, key=key)``."""
    key = seed_gateway(store, key_name)
    with Upstream() as upstream, contextlib.ExitStack() as pdp_stack:
        pdp = pdp_stack.enter_context(live_server(PDP_ENV, database_url=database_url,
                                                  workers=2))
        pdp_port = int(pdp.rsplit(":", 1)[1])
        with make_gateway(upstream=upstream.port, pdp=pdp_port, key=key) as gateway:
            yield Rig(gateway, upstream, pdp_stack.close)


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
