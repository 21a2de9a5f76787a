"""The pdp-client distribution (clients/python) installs alone and pulls in none
of pdp's server dependencies: built and installed into a fresh virtual
environment, it imports, decides (fail-closed, as nothing listens) and cannot
import Flask, SQLAlchemy, lark or pdp."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv

import pytest

from tests.client.support import ROOT

PROBE = r"""
import importlib.util, sys
import pdp_client, pdp_client.wsgi
from pdp_client import PdpClient
missing = [m for m in ("flask", "sqlalchemy", "lark", "pdp", "marshmallow", "jwt")
           if importlib.util.find_spec(m) is not None]
assert not missing, f"importable in the light install: {missing}"
with PdpClient("http://127.0.0.1:9", "pdp_k", timeout=1, retries=0) as c:
    d = c.decide("read", {"type": "document", "id": "d"}, token="t")
assert d.decision == "deny" and d.errors[0]["code"] == "pdp_unavailable", d
print("light", pdp_client.__file__)
"""


@pytest.mark.slow
def test_pdp_client_installs_without_pdp_or_its_dependencies(tmp_path):
    source = tmp_path / "src"                 # built from a copy: the checkout stays clean
    shutil.copytree(ROOT / "clients" / "python", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, clear=True)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--disable-pip-version-check", str(source)],
                   check=True, timeout=120, cwd=tmp_path)
    out = subprocess.run([str(python), "-I", "-c", PROBE], check=True, capture_output=True,
                         text=True, timeout=30, cwd=tmp_path)
    assert f"light {env_dir}" in out.stdout
    frozen = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "list",
                             "--format=freeze", "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True, timeout=60).stdout
    names = {line.split("==")[0].lower() for line in frozen.split()}
    assert names == {"pdp-client"}, names
