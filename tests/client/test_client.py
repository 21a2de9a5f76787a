"""PdpClient against a real pdp (gunicorn), a pdp that is down, one that hangs,
and fake servers for the retry and malformed-answer rules."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pdp.client import Decision, PdpClient, PdpUnavailable
from tests.client.support import SilentServer, document, refused_url, token


@pytest.fixture(scope="module")
def client(pdp_server):
    with PdpClient(pdp_server.url, pdp_server.key, timeout=5) as c:
        yield c


# --------------------------------------------------------------------------- a real pdp

def test_allow_is_typed_with_the_determining_policy(client):
    d = client.decide("read", document(owner="alice"), token=token("alice"))
    assert isinstance(d, Decision)
    assert d.decision == "allow" and d.allowed and bool(d)
    assert d.decision_id and d.policy_set == "default" and d.policy_version == 1
    assert d.policies == ("doc-owner-read",)
    assert d.reasons == ("owners may read their own documents",)
    assert d.errors == () and d.token_error is None


def test_deny_with_reasons(client):
    d = client.decide("update", document(owner="alice", archived=True), token=token("alice"))
    assert d.decision == "deny" and not d.allowed
    assert d.policies == ("doc-archived-read-only",)
    assert d.reasons == ("archived documents are read-only",)
    assert d.decision_id and not d.unavailable


def test_deny_by_default_and_allowed(client):
    assert client.allowed("read", document(owner="alice"), token=token("bob")) is False
    assert client.allowed("read", document(owner="bob"), token=token("bob")) is True


def test_a_refused_end_user_token_is_a_deny_naming_the_token_error(client):
    d = client.decide("read", document(owner="alice"), token=token("alice", expires_in=-600))
    assert d.decision == "deny" and d.token_error == "token_expired" and d.decision_id
    forged = client.decide("read", document(), token=token("alice", secret="x" * 40))
    assert forged.token_error == "token_signature"


def test_claims_need_a_trusted_key(pdp_server, client):
    resource = document(owner="carol")
    refused = client.decide("read", resource, claims={"sub": "carol"})
    assert refused.decision == "deny" and refused.errors[0]["code"] == "pdp_refused"
    with PdpClient(pdp_server.url, pdp_server.trusted_key) as trusted:
        assert trusted.decide("read", resource, claims={"sub": "carol"}).allowed


def test_a_wrong_api_key_fails_closed_or_raises(pdp_server):
    with PdpClient(pdp_server.url, "pdp_" + "x" * 43) as c:
        d = c.decide("read", document(), token=token())
        assert d.decision == "deny" and d.decision_id is None
        assert d.errors[0]["code"] == "pdp_refused" and "401" in d.errors[0]["message"]
        with pytest.raises(PdpUnavailable) as info:
            c.decide("read", document(), token=token(), raise_on_error=True)
        assert info.value.code == "pdp_refused" and info.value.status == 401


def test_batch_answers_in_order(client):
    checks = [("read", document("d-1", owner="alice")),
              {"action": "update", "resource": document("d-3", owner="alice", archived=True)},
              ("delete", document("d-2", owner="bob"))]
    got = client.decide_batch(checks, token=token("alice"))
    assert [d.decision for d in got] == ["allow", "deny", "deny"]
    assert got[1].reasons == ("archived documents are read-only",)
    assert len({d.decision_id for d in got}) == 3
    assert client.decide_batch([], token=token()) == []


def test_connections_are_kept_alive_and_reused(pdp_server):
    with PdpClient(pdp_server.url, pdp_server.key) as c:
        c.decide("read", document(), token=token())
        conn = c._pool.get()
        assert conn is not None and conn.sock is not None
        c._pool.put(conn)
        c.decide("read", document(), token=token())
        assert c._pool.get() is conn


def test_one_client_serves_many_threads(client):
    from concurrent.futures import ThreadPoolExecutor

    def ask(i):
        owner = "alice" if i % 2 else "bob"
        return client.decide("read", document(f"d-{i}", owner=owner), token=token("alice"))

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(40)))
    assert [d.decision for d in got] == ["allow" if i % 2 else "deny" for i in range(40)]
    assert len({d.decision_id for d in got}) == 40


def test_an_unknown_policy_set_is_refused_not_allowed(client):
    d = client.decide("read", document(), token=token(), policy_set="nope")
    assert d.decision == "deny" and d.errors[0]["code"] == "pdp_refused"


def test_the_client_imports_no_server_dependency():
    code = ("import sys, pdp.client, pdp_client.wsgi; "
            "bad = [m for m in ('flask', 'sqlalchemy', 'lark', 'marshmallow', 'jwt', "
            "'pdp.engine', 'pdp.store') if m in sys.modules]; assert not bad, bad")
    import subprocess
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- pdp away

def test_pdp_down_fails_closed_quickly():
    with PdpClient(refused_url(), "pdp_key", timeout=20, retries=2, backoff=0.01) as c:
        started = time.monotonic()
        d = c.decide("read", document(), token=token())
        assert time.monotonic() - started < 10     # a refusal is not waited out to the timeout
        assert d.decision == "deny" and d.decision_id is None and d.unavailable
        assert d.errors[0]["code"] == "pdp_unavailable"
        assert c.allowed("read", document(), token=token()) is False
        assert [x.decision for x in c.decide_batch([("read", document())] * 2,
                                                   token=token())] == ["deny", "deny"]
        with pytest.raises(PdpUnavailable) as info:
            c.decide("read", document(), token=token(), raise_on_error=True)
        assert info.value.code == "pdp_unavailable"


def test_pdp_hanging_fails_closed_within_the_timeout():
    with SilentServer() as silent, PdpClient(silent.url, "pdp_key", timeout=0.5) as c:
        started = time.monotonic()
        d = c.decide("read", document(), token=token())
        elapsed = time.monotonic() - started
        assert d.decision == "deny" and d.errors[0]["code"] == "pdp_unavailable"
        assert 0.4 < elapsed < 5, elapsed          # the server never answers: only the timeout ends it
        assert len(silent.accepted) == 1          # a timeout is not repeated
        with pytest.raises(PdpUnavailable):
            c.decide_batch([("read", document())], token=token(), raise_on_error=True)
        assert len(silent.accepted) == 2


# --------------------------------------------------------------------------- fake pdp

ALLOW = {"decision": "allow", "decision_id": "0190-x", "policy_set": "default",
         "policy_version": 1, "policies": ["p"], "reasons": [], "errors": []}


class Fake:
    """An HTTP server answering each POST with the next ``(status, body)``."""

    def __init__(self, answers, close_after: bool = False):
        self.answers = list(answers)
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append({"path": self.path, "auth": self.headers["Authorization"],
                                      "body": json.loads(self.rfile.read(length))})
                status, body = fake.answers.pop(0) if fake.answers else (500, b"")
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                # Close without saying so (no ``Connection: close``): the client's
                # kept-alive connection goes stale.
                self.close_connection = close_after

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/prefix"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(*answers, close_after=False):
        servers.append(Fake(answers, close_after))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_502_503_504_are_retried(fake):
    server = fake((503, {"error": {"code": "no_active_version", "message": "x"}}),
                  (502, b"bad gateway"), (504, b""), (200, ALLOW))
    with PdpClient(server.url, "pdp_k", retries=3, backoff=0.01) as c:
        d = c.decide("read", document(), token="t", context={"ip": "10.0.0.1"})
    assert d.allowed and d.decision_id == "0190-x"
    assert len(server.requests) == 4
    first = server.requests[0]
    assert first["path"] == "/prefix/v1/decide" and first["auth"] == "Bearer pdp_k"
    assert first["body"] == {"subject": {"token": "t"}, "action": "read",
                             "resource": document(), "context": {"ip": "10.0.0.1"}}


def test_retries_are_bounded(fake):
    server = fake(*[(503, b"")] * 5)
    with PdpClient(server.url, "k", retries=1, backoff=0.01) as c:
        d = c.decide("read", document(), token="t")
    assert d.decision == "deny" and "503" in d.errors[0]["message"]
    assert len(server.requests) == 2


def test_500_and_4xx_are_not_retried(fake):
    server = fake((500, b""), (400, {"error": {"code": "invalid_request", "message": "m"}}))
    with PdpClient(server.url, "k", retries=3, backoff=0.01) as c:
        assert c.decide("read", document(), token="t").errors[0]["code"] == "pdp_unavailable"
        d = c.decide("read", document(), token="t")
    assert d.errors[0]["code"] == "pdp_refused" and "invalid_request" in d.errors[0]["message"]
    assert len(server.requests) == 2


@pytest.mark.parametrize("body", [
    b"not json", {"decision": "maybe", "decision_id": "x"}, {"decision": "allow"},
    {"decision": "allow", "decision_id": "x", "reasons": "nope"}, [ALLOW]])
def test_a_malformed_answer_is_a_deny(fake, body):
    server = fake((200, body), (200, body))
    with PdpClient(server.url, "k") as c:
        d = c.decide("read", document(), token="t")
        assert d.decision == "deny" and d.decision_id is None
        assert d.errors[0]["code"] == "pdp_malformed_answer"
        with pytest.raises(PdpUnavailable) as info:
            c.decide("read", document(), token="t", raise_on_error=True)
        assert info.value.code == "pdp_malformed_answer"


def test_a_batch_with_the_wrong_number_of_decisions_is_denied(fake):
    server = fake((200, {"decisions": [ALLOW]}))
    with PdpClient(server.url, "k") as c:
        got = c.decide_batch([("read", document()), ("read", document())], claims={"sub": "a"})
    assert [d.decision for d in got] == ["deny", "deny"]
    assert server.requests[0]["body"]["checks"][1] == {"action": "read", "resource": document()}


def test_arguments_are_checked():
    c = PdpClient("http://127.0.0.1:1", "k")
    with pytest.raises(TypeError):
        c.decide("read", document())                       # neither token nor claims
    with pytest.raises(TypeError):
        c.decide("read", document(), token="t", claims={})
    with pytest.raises(ValueError):
        PdpClient("ftp://x", "k")
    assert "k" not in repr(c).replace("127", "")


def test_a_stale_kept_alive_connection_is_replaced(fake):
    server = fake((200, ALLOW), (200, ALLOW), close_after=True)
    with PdpClient(server.url, "k", retries=0) as c:
        assert c.decide("read", document(), token="t").allowed
        stale = c._pool.get()
        assert stale is not None and stale.sock is not None
        c._pool.put(stale)
        time.sleep(0.05)                      # the server has closed its end by now
        assert c.decide("read", document(), token="t").allowed
    assert len(server.requests) == 2
