"""Repository of console sessions (``console_sessions``).

A session is found by the SHA-256 of its cookie value; the cookie itself is
never stored. A session belongs to the API key it was opened with (by name), and
is only valid while that key is not revoked: :func:`find_session` joins
``api_keys`` so that revoking a key ends its console sessions at once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pdp.store.models import ApiKeyRow, ConsoleSessionRow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add_session(session: Session, *, token: str, key_name: str, roles: list[str],
                csrf_token: str, now: datetime, expires_at: datetime) -> ConsoleSessionRow:
    row = ConsoleSessionRow(token_hash=hash_token(token), key_name=key_name, roles=roles,
                            csrf_token=csrf_token, created_at=now, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


def find_session(session: Session, token: str, *, now: datetime) -> ConsoleSessionRow | None:
    """The live session with this cookie value: unexpired, its key not revoked."""
    stmt = (select(ConsoleSessionRow)
            .join(ApiKeyRow, ApiKeyRow.name == ConsoleSessionRow.key_name)
            .where(ConsoleSessionRow.token_hash == hash_token(token),
                   ConsoleSessionRow.expires_at > now,
                   ApiKeyRow.revoked_at.is_(None)))
    return session.scalars(stmt).one_or_none()


def delete_session(session: Session, token: str) -> bool:
    result = session.execute(delete(ConsoleSessionRow)
                             .where(ConsoleSessionRow.token_hash == hash_token(token)))
    return bool(result.rowcount)


def delete_expired(session: Session, *, now: datetime) -> int:
    result = session.execute(delete(ConsoleSessionRow)
                             .where(ConsoleSessionRow.expires_at <= now))
    return result.rowcount or 0
