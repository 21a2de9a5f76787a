"""A real nginx (``auth_request``) in front of a small upstream, asking a real pdp
(``pdp serve``, gunicorn) through ``/v1/authz/http`` — the ```nginx block of
``docs/gateways.md`` itself, run.

Proves: an allow reaches the upstream (with the subject header, the client's own
copy of which is dropped); a 401 or 403 never reaches it; headers a client sends to
spoof ``X-Original-URI``/``X-Original-Method`` are overwritten by nginx; an encoded
path is decided as the upstream will see it; and with pdp down the client gets a
5xx from nginx and the upstream is never reached.

nginx is looked for at ``/usr/sbin/nginx`` (or on ``PATH``). Without it the test is
skipped with a loud reason — and fails when ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.gateways import GatewayProcess, bearer, gateway_rig
from tests.conftest import IN_CI
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]

DOC = ROOT / "docs" / "gateways.md"
#: The placeholders of the documented block, replaced by the test's own.
DOC_PDP = "http://127.0.0.1:8080/v1/authz/http"
DOC_UPSTREAM = "http://app_upstream"
DOC_KEY = "pdp_REPLACE_WITH_THE_GATEWAY_KEY"

#: A whole nginx.conf around the documented locations, private to a temporary
#: directory (pid, logs, temp paths), in the foreground, one process.
NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
{locations}
  }}
}}
"""


def documented_locations() -> str:
    """The ```nginx block of docs/gateways.md, the one the docs tell operators to use."""
    blocks = re.findall(r"^```nginx\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1, "docs/gateways.md must have exactly one ```nginx block"
    block = blocks[0]
    for placeholder in (DOC_PDP, DOC_UPSTREAM, DOC_KEY):
        assert placeholder in block, placeholder
    return block


def find_nginx() -> str:
    path = "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else shutil.which("nginx")
    if path:
        return path
    reason = "nginx is not installed (apt-get install -y nginx)"
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"!!! {reason} — the nginx gateway test was NOT run !!!")


class Nginx(GatewayProcess):
    name = "nginx"

    def __init__(self, binary: str, directory: Path, *, upstream: int, pdp: int, key: str):
        self.port = free_port()
        self.directory = directory
        self.conf = directory / "nginx.conf"
        locations = (documented_locations()
                     .replace(DOC_PDP, f"http://127.0.0.1:{pdp}/v1/authz/http")
                     .replace(DOC_UPSTREAM, f"http://127.0.0.1:{upstream}")
                     .replace(DOC_KEY, key))
        self.conf.write_text(NGINX_CONF.format(dir=directory, port=self.port,
                                               locations=locations))
        self.run_command = [binary, "-p", str(directory), "-c", str(self.conf),
                            "-e", str(directory / "error.log")]

    def validate(self) -> None:
        check = subprocess.run([*self.run_command, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr

    def errors(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def test_nginx_auth_request_in_front_of_an_upstream(store, database_url, tmp_path):
    binary = find_nginx()
    make = functools.partial(Nginx, binary, tmp_path)
    with gateway_rig(make, store, database_url, "nginx") as rig:
        nginx, ask = rig.gateway, rig.ask

        # Allow: anyone may GET /health; the upstream is reached, once.
        status, _, content, reached = ask("GET", "/health")
        assert (status, content) == (200, b"upstream ok"), nginx.errors()
        assert [(m, p) for m, p, _ in reached] == [("GET", "/health")]

        # Allow for a signed-in user, with the subject passed on; a POST keeps its body.
        status, _, _, reached = ask("POST", "/api/orders?x=1", bearer("alice"), b"{}")
        assert status == 200
        assert reached[0][:2] == ("POST", "/api/orders?x=1")
        assert reached[0][2].get("X-PDP-Subject") == "alice"

        # A client's own X-PDP-Subject never reaches the upstream.
        status, _, _, reached = ask("GET", "/health", {"X-PDP-Subject": "root"})
        assert status == 200 and "X-PDP-Subject" not in reached[0][2]

        # 401: no token where one is needed; the challenge reaches the client.
        status, headers, _, reached = ask("GET", "/api/orders")
        assert status == 401 and reached == []
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")

        # 401: an invalid token.
        status, _, _, reached = ask("GET", "/api/orders", {"Authorization": "Bearer x.y.z"})
        assert status == 401 and reached == []

        # 403: signed in but not allowed; the method is the client's, not nginx's GET.
        status, _, _, reached = ask("GET", "/admin/users", bearer("alice"))
        assert status == 403 and reached == []
        status, _, _, reached = ask("DELETE", "/api/orders/7", bearer("alice"))
        assert status == 403 and reached == []
        status, _, _, reached = ask("DELETE", "/api/orders/7",
                                    bearer("root", ["user", "admin"]))
        assert status == 200 and reached[0][:2] == ("DELETE", "/api/orders/7")

        # Spoofed X-Original-* headers are overwritten by nginx: the real request decides.
        spoof = {"X-Original-URI": "/health", "X-Original-Method": "GET"}
        status, _, _, reached = ask("GET", "/admin/users", {**spoof, **bearer("alice")})
        assert status == 403 and reached == []
        status, _, _, reached = ask("DELETE", "/api/orders/7", {**spoof, **bearer("alice")})
        assert status == 403 and reached == []

        # A client cannot pick a friendlier policy set: nginx sets the header.
        status, _, _, reached = ask("GET", "/admin/users",
                                    {"X-PDP-Policy-Set": "open", **bearer("alice")})
        assert status == 403 and reached == []

        # An encoded path is decided as the upstream will see it.
        status, _, _, reached = ask("GET", "/%61dmin/users", bearer("alice"))
        assert status == 403 and reached == []
        status, _, _, reached = ask("GET", "/public/%2e%2e/admin/users", bearer("alice"))
        assert status in (400, 403) and reached == []

        # pdp down: nginx answers 5xx and the upstream is never reached.
        rig.stop_pdp()
        status, _, _, reached = ask("GET", "/health")
        assert status >= 500 and reached == []
