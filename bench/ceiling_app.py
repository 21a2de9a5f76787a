"""The ceiling of the HTTP benchmark (bench/http.py): the least a Flask endpoint can
do under pdp's gunicorn settings — parse a small JSON body and return a small JSON
answer. No auth, no validation, no policies, no token.

    gunicorn -c python:pdp.api.gunicorn_conf --pythonpath bench ceiling_app:app

``POST /echo`` takes the same decide body bench/http.py sends to pdp and answers a
body of about the same size as pdp's decision.
"""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)


@app.post("/echo")
def echo():
    body = request.get_json()
    resource = body.get("resource") or {}
    return {"decision": "allow", "resource": resource.get("id"), "policies": [], "errors": []}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
