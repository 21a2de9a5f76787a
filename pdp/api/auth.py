"""Who is calling: API keys in ``Authorization: Bearer <key>``.

:class:`Authenticator` turns a presented key into a
:class:`~pdp.store.keys.Caller` (or ``None``) through the store, and remembers
the answer for ``ttl`` seconds (``PDP_AUTH_CACHE_TTL``, default 5) so that a busy
caller costs no database round trip per request, while a revoked key stops
working within ``ttl`` seconds. The cache is keyed by an HMAC of the key under a
secret drawn when the process starts, never by the key itself (nor by the hash the
store keeps); unknown keys are remembered too, so random keys cannot hammer the
database; the cache is bounded.

:func:`require_role` guards a view: no usable key → 401 ``unauthenticated`` (the
same answer whether the header is missing, malformed, or names an unknown or
revoked key); a known key without the role, or restricted to other policy sets
than the one the URL names (``set_name``) → 403 ``forbidden``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flask import g, request

from pdp.api.context import services
from pdp.api.errors import Forbidden, Unauthenticated
from pdp.store.keys import Caller

#: Longer values are not keys; they are refused without a look-up.
MAX_KEY_LENGTH = 256


class Authenticator:
    """Key → caller, through ``lookup`` (the store), with a short-lived cache."""

    def __init__(self, lookup: Callable[[str], Caller | None], *, ttl: float = 5.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._lookup = lookup
        self.ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, tuple[float, Caller | None]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, raw_key: str | None) -> Caller | None:
        if not raw_key or len(raw_key) > MAX_KEY_LENGTH:
            return None
        if self.ttl <= 0:
            return self._lookup(raw_key)
        slot = hmac.new(self._secret, raw_key.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(slot)
            if hit is not None and hit[0] > now:
                return hit[1]
        caller = self._lookup(raw_key)              # outside the lock: it is I/O
        with self._lock:
            self._cache[slot] = (now + self.ttl, caller)
            self._cache.move_to_end(slot)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return caller

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def bearer_key() -> str | None:
    """The key in ``Authorization: Bearer <key>``, or ``None``."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def current_caller() -> Caller:
    """The authenticated caller of this request (set by :func:`require_role`)."""
    return g.caller


def authenticate_request() -> Caller:
    caller = services().authenticator.authenticate(bearer_key())
    if caller is None:
        raise Unauthenticated()
    return caller


def require_role(role: str) -> Callable:
    """Decorate a view so that only callers with ``role`` reach it (see module doc).

    When the route has a ``set_name`` variable, a caller restricted to other sets
    is refused too.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            caller = authenticate_request()
            if not caller.has_role(role):
                raise Forbidden(f"this API key does not have the {role!r} role")
            set_name = kwargs.get("set_name")
            if set_name is not None and not caller.may_use(set_name):
                raise Forbidden(f"this API key may not use the policy set {set_name!r}")
            g.caller = caller
            return view(*args, **kwargs)

        guarded.required_role = role            # read by the OpenAPI contract test
        return guarded

    return decorate
