from __future__ import annotations

import pytest

from pdp.store.db import Database
from tests.client.support import ENV, Pdp, prepare
from tests.live import live_server


@pytest.fixture(scope="session")
def pdp_server(tmp_path_factory):
    """One real pdp (gunicorn, SQLite) shared by the client tests; see support.py."""
    directory = tmp_path_factory.mktemp("pdp-client")
    url = f"sqlite:///{directory / 'pdp.db'}"
    db = Database(url)
    try:
        db.upgrade()
        key, trusted = prepare(db)
    finally:
        db.dispose()
    with live_server(ENV, database_url=url, workers=1, threads=4) as base:
        yield Pdp(str(base), key, trusted)
