"""docs/client.md: its Python blocks are valid Python and name what exists."""

from __future__ import annotations

import re

import pdp_client
import pdp_client.flask
import pdp_client.wsgi
from pdp.client import embedded
from tests.client.support import ROOT

DOC = ROOT / "docs" / "client.md"


def test_the_python_blocks_compile():
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text("utf-8"), re.M | re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        compile(block, f"docs/client.md python block {i + 1}", "exec")


def test_the_names_it_documents_exist():
    for name in ("PdpClient", "PdpUnavailable", "Decision", "resource", "bearer_token"):
        assert hasattr(pdp_client, name)
    assert pdp_client.flask.PdpFlask and pdp_client.flask.require
    assert pdp_client.wsgi.PdpMiddleware and embedded.EmbeddedDecider
    assert (ROOT / "examples" / "documents-service" / "app.py").exists()
