"""Console sign-in: API key in, session out.

Only keys with the ``auditor`` or ``admin`` role may open a console session (a
``decide``-only key is refused exactly like an unknown one, so the form does not
tell which keys exist). The session cookie is 256 random bits; the store keeps
its SHA-256 (:mod:`pdp.store.sessions`), with the key's name and roles as they
were at sign-in, a CSRF token for the session's forms, and an absolute expiry.
Revoking the key ends its sessions at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pdp.service import keys
from pdp.store import sessions as repo
from pdp.store.db import Database
from pdp.store.models import utcnow

#: Roles that may sign in to the console.
CONSOLE_ROLES = ("auditor", "admin")
#: Default lifetime of a session (absolute, from sign-in).
DEFAULT_TTL = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in console user."""

    key_name: str
    roles: frozenset[str]
    csrf_token: str
    expires_at: datetime

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def __repr__(self) -> str:  # the CSRF token stays out of logs
        return f"ConsoleSession(key_name={self.key_name!r}, roles={sorted(self.roles)!r})"


def sign_in(db: Database, raw_key: str | None, *,
            ttl: timedelta = DEFAULT_TTL) -> tuple[ConsoleSession, str] | None:
    """A new session and its cookie value, or ``None`` when the key is unknown,
    revoked, malformed or has neither console role."""
    caller = keys.authenticate(db, raw_key)
    if caller is None or not any(caller.has_role(r) for r in CONSOLE_ROLES):
        return None
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    roles = sorted(caller.roles & set(CONSOLE_ROLES))
    with db.write() as session:
        repo.delete_expired(session, now=now)
        row = repo.add_session(session, token=token, key_name=caller.name, roles=roles,
                               csrf_token=csrf, now=now, expires_at=now + ttl)
        result = _session(row)
    return result, token


def current(db: Database, token: str | None) -> ConsoleSession | None:
    """The session whose cookie value is ``token``, if it is still valid."""
    if not token or len(token) > 128:
        return None
    with db.read() as session:
        row = repo.find_session(session, token, now=utcnow())
        return None if row is None else _session(row)


def sign_out(db: Database, token: str | None) -> bool:
    if not token or len(token) > 128:
        return False
    with db.write() as session:
        return repo.delete_session(session, token)


def _session(row) -> ConsoleSession:
    return ConsoleSession(key_name=row.key_name, roles=frozenset(row.roles),
                          csrf_token=row.csrf_token, expires_at=row.expires_at)
