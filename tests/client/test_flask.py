"""The Flask extension's options, in-process (the example service's tests cover
the HTTP path against a real pdp)."""

from __future__ import annotations

import pytest
from flask import Flask, g, request

from pdp.client import EmbeddedDecider
from pdp.client.flask import PdpFlask, require
from tests.client.support import EXAMPLE, document


@pytest.fixture(scope="module")
def decider():
    with EmbeddedDecider(policy_dir=EXAMPLE / "policies") as d:
        yield d


def make_app(decider, **options) -> Flask:
    app = Flask(__name__)
    ext = PdpFlask(**options)
    ext.init_app(app, client=decider)

    @app.route("/docs/<owner>", methods=["GET", "PUT"])
    @require(lambda owner: "read" if request.method == "GET" else "update",
             resource=lambda owner: document("d-9", owner=owner),
             context=lambda owner: {"owner_asked": owner})
    def view(owner):
        return {"decision": g.pdp_decision.decision, "owner": owner}

    return app


def test_claims_from_the_application_instead_of_a_token(decider):
    user = {}
    app = make_app(decider, claims=lambda: user.get("claims"))
    http = app.test_client()
    assert http.get("/docs/alice").status_code == 401          # not signed in
    user["claims"] = {"sub": "alice"}
    r = http.get("/docs/alice")
    assert r.status_code == 200 and r.json == {"decision": "allow", "owner": "alice"}
    assert r.headers["X-PDP-Decision-Id"]
    assert http.put("/docs/bob").status_code == 403


def test_without_the_extension_the_view_is_not_served():
    app = Flask(__name__)

    @app.get("/x")
    @require("read", resource=document())
    def x():
        return "served"

    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert app.test_client().get("/x", headers={"Authorization": "Bearer t"}).status_code == 500
    with pytest.raises(TypeError):
        require("read")
