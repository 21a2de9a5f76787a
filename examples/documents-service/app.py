"""A small documents API protected by pdp (``@require``).

    PDP_URL=http://127.0.0.1:8080 PDP_API_KEY=pdp_… python app.py

Every view asks pdp before it runs: the end user's bearer token goes to pdp
with the document (owner, archived) as the resource; a deny is a 403 with the
reasons, a missing or refused token a 401. ``policies/`` holds the policies the
service expects (publish them: ``pdp policy push policies/ --activate``).
``create_app(decider)`` takes a :class:`pdp_client.PdpClient` or, to decide
in-process, a ``pdp.client.EmbeddedDecider``.
"""

from __future__ import annotations

import os

from flask import Flask, abort, request

from pdp_client import PdpClient
from pdp_client.flask import PdpFlask, require

SEED = {
    "d-1": {"title": "Alice's notes", "owner": "alice", "archived": False},
    "d-2": {"title": "Bob's report", "owner": "bob", "archived": False},
    "d-3": {"title": "Alice's old plan", "owner": "alice", "archived": True},
}


def create_app(decider, documents: dict | None = None) -> Flask:
    app = Flask(__name__)
    PdpFlask(app, client=decider)
    docs = {k: dict(v) for k, v in (documents or SEED).items()}

    def document(doc_id: str) -> dict:
        """The resource pdp decides on: the stored document's owner and state."""
        doc = docs.get(doc_id)
        if doc is None:
            abort(404)
        return {"type": "document", "id": doc_id,
                "attributes": {"owner": doc["owner"], "archived": doc["archived"]}}

    @app.get("/documents/<doc_id>")
    @require("read", resource=document)
    def show(doc_id):
        return {"id": doc_id, **docs[doc_id]}

    @app.put("/documents/<doc_id>")
    @require("update", resource=document)
    def update(doc_id):
        body = request.get_json(silent=True) or {}
        if isinstance(body.get("title"), str):
            docs[doc_id]["title"] = body["title"]
        return {"id": doc_id, **docs[doc_id]}

    @app.delete("/documents/<doc_id>")
    @require("delete", resource=document)
    def delete(doc_id):
        del docs[doc_id]
        return "", 204

    return app


if __name__ == "__main__":                                   # pragma: no cover
    client = PdpClient(os.environ.get("PDP_URL", "http://127.0.0.1:8080"),
                       os.environ["PDP_API_KEY"], timeout=1.0)
    create_app(client).run(port=int(os.environ.get("PORT", "5000")))
