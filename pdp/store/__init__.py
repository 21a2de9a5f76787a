"""The store: SQLAlchemy models, migrations and repositories.

* :mod:`pdp.store.db` — :class:`Database` (engine and units of work per URL);
* :mod:`pdp.store.models` — the tables;
* :mod:`pdp.store.migrate` — Alembic driven from code (``pdp db upgrade``);
* :mod:`pdp.store.policies`, :mod:`pdp.store.keys` — repositories.

Repositories take a session and never commit: the use cases in :mod:`pdp.service`
own the transactions.
"""

from pdp.store.db import Database, StoreError

__all__ = ["Database", "StoreError"]
