"""The active policy versions of one replica, kept current without a restart.

:class:`ActivePolicies` holds an immutable snapshot ``{set name: ActiveVersion}``
where :class:`ActiveVersion` is the pair ``(version number, PolicySet)``. The
snapshot is replaced whole by one attribute assignment, so a reader that took it
sees one consistent version per set: :meth:`ActivePolicies.decide` reads the pair
once and decides with it, so every decision is made entirely by one version and
names it. :meth:`ActivePolicies.get` costs no database round trip.

A background thread keeps the snapshot current:

* on PostgreSQL it LISTENs on ``pdp_policy_activated`` with a dedicated psycopg
  connection (activations NOTIFY on commit), so replicas follow within
  milliseconds; it also polls every ``poll_interval`` seconds (default 5) as a
  fallback, and while the listening connection is down it polls only, reconnecting
  in the background;
* on SQLite it polls every ``poll_interval`` seconds (default 1).

A poll is one cheap query (``name, active_version`` of every set); only a set whose
active number changed has its compiled form loaded (``PolicySet.from_bytes``, no
parsing). Should that fail (a compiled form from an incompatible pdp release), the
version's sources are compiled instead; should that fail too, the replica keeps
serving the version it has and logs the error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from pdp.config import default_poll_interval
from pdp.engine.compiler import compile_policies
from pdp.engine.policyset import Decision, PolicySet
from pdp.errors import NotFound
from pdp.store import policies as repo
from pdp.store.db import Database
from pdp.store.policies import ACTIVATION_CHANNEL

log = logging.getLogger(__name__)

#: Longest a wait in the watcher lasts, so that :meth:`ActivePolicies.stop` is prompt.
_TICK = 0.25
#: Stored versions were within the data limit when published; never refuse them now.
_NO_LIMIT = 2**62
#: Seconds between attempts to re-open a lost LISTEN connection (polling meanwhile).
RECONNECT_DELAY = 5.0
#: :meth:`ActivePolicies.catch_up` refreshes at most this often (seconds).
CATCH_UP_MIN_AGE = 0.2


class ActiveVersion(NamedTuple):
    """The active version of one set: ``version, policies = active.get("default")``."""

    version: int
    policies: PolicySet


@dataclass(frozen=True, slots=True)
class VersionedDecision:
    """A decision and the one policy-set version that made it."""

    policy_set: str
    version: int
    decision: Decision


class ActivePolicies:
    """Per-replica view of the active version of every policy set."""

    def __init__(self, db: Database, *, poll_interval: float | None = None,
                 listen: bool | None = None, reconnect_delay: float = RECONNECT_DELAY,
                 on_change: Callable[[str, int], None] | None = None):
        self._db = db
        self.poll_interval = (poll_interval if poll_interval is not None
                              else default_poll_interval(db.backend))
        #: LISTEN/NOTIFY in use (PostgreSQL only).
        self.listen = db.is_postgresql if listen is None else (listen and db.is_postgresql)
        self.reconnect_delay = reconnect_delay
        self._on_change = on_change
        self._snapshot: Mapping[str, ActiveVersion] = MappingProxyType({})
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self._reported: set[tuple[str, int]] = set()
        #: ``time.monotonic()`` of the last successful refresh, or ``None``.
        self.last_refresh: float | None = None
        self._caught_up_at = 0.0
        #: The last refresh error, cleared by the next successful refresh.
        self.last_error: str | None = None

    # ------------------------------------------------------------------ reading

    def get(self, policy_set: str = "default") -> ActiveVersion:
        """``(version, PolicySet)`` active for ``policy_set``; :class:`NotFound` if none."""
        active = self._snapshot.get(policy_set)
        if active is None:
            raise NotFound(f"policy set {policy_set!r} has no active version",
                           code="no_active_version")
        return active

    def find(self, policy_set: str = "default") -> ActiveVersion | None:
        return self._snapshot.get(policy_set)

    def snapshot(self) -> Mapping[str, ActiveVersion]:
        """Every set's active version, as one consistent, read-only mapping."""
        return self._snapshot

    def versions(self) -> dict[str, int]:
        """``{set name: active version number}`` (for metrics and ``/readyz``)."""
        return {name: active.version for name, active in self._snapshot.items()}

    def decide(self, request, policy_set: str = "default") -> VersionedDecision:
        """Decide ``request`` with the active version of ``policy_set``."""
        version, policies = self.get(policy_set)
        return VersionedDecision(policy_set, version, policies.decide(request))

    @property
    def listening(self) -> bool:
        """Whether NOTIFY is being received right now (PostgreSQL)."""
        return self._listening

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ refreshing

    def catch_up(self, min_age: float = CATCH_UP_MIN_AGE) -> None:
        """Refresh now, unless this was tried less than ``min_age`` seconds ago.

        For a miss: a set activated on another replica or by the CLI a moment ago
        must not be answered "no active version" until the next poll. Rate-limited,
        so that requests naming unknown sets cannot make every request a store
        round trip. A store error is logged, not raised: the caller answers from
        the snapshot it has.
        """
        now = time.monotonic()
        # Limited by its own attempts only: the watcher's last poll says nothing
        # about a set activated since (with a poll every 0.2 s, a limit that counted
        # polls never let a miss look, and a set activated a moment ago elsewhere
        # was refused until the next poll).
        if self._caught_up_at and now - self._caught_up_at < min_age:
            return
        self._caught_up_at = now                 # also after a failed attempt
        try:
            self.refresh()
        except Exception as exc:                 # the store is down: keep serving
            self.last_error = str(exc)
            log.warning("could not refresh the active policy sets: %s", exc)

    def refresh(self) -> list[str]:
        """Bring the snapshot up to date now; the names of the sets that changed.

        Store errors propagate (the watcher logs them and tries again later).
        """
        with self._refresh_lock:
            current = self._snapshot
            with self._db.read() as session:
                numbers = repo.active_numbers(session)
                stale = sorted(name for name, number in numbers.items()
                               if name not in current or current[name].version != number)
                rows = repo.active_compiled(session, stale)
            updated = dict(current)
            changed = []
            for row in rows:
                policies = self._load(row)
                if policies is not None:
                    updated[row.policy_set] = ActiveVersion(row.number, policies)
                    changed.append(row.policy_set)
            for name in set(updated) - set(numbers):
                del updated[name]
                changed.append(name)
            if changed:
                self._snapshot = MappingProxyType(updated)   # the atomic swap
            self.last_refresh = time.monotonic()
            self.last_error = None
        for name in changed:
            if name in updated:
                log.info("policy set %r: now serving version %d", name, updated[name].version)
                if self._on_change is not None:
                    try:
                        self._on_change(name, updated[name].version)
                    except Exception:
                        log.exception("on_change callback failed")
        return changed

    def _load(self, row: repo.ActiveCompiled) -> PolicySet | None:
        """The policy set of ``row``; ``None`` (logged once per version) if neither
        its compiled form nor its sources load. Tried again at every refresh."""
        key = (row.policy_set, row.number)
        try:
            return PolicySet.from_bytes(row.compiled)
        except Exception as exc:
            if key not in self._reported:
                log.warning("policy set %r version %d: compiled form not loadable (%s); "
                            "compiling its sources", row.policy_set, row.number, exc)
        try:
            with self._db.read() as session:
                version = repo.find_version(session, row.policy_set, row.number)
                files = repo.files_of(session, version)
            return compile_policies(files, max_data_bytes=_NO_LIMIT)
        except Exception:
            if key not in self._reported:
                log.exception("policy set %r version %d cannot be loaded; keeping the "
                              "version in service", row.policy_set, row.number)
            self._reported.add(key)
            return None

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as exc:
            self.last_error = str(exc)
            log.warning("refreshing active policy versions failed: %s", exc)

    # ------------------------------------------------------------------ the watcher

    def start(self) -> ActivePolicies:
        """Load the active versions (errors are logged, not raised: the watcher keeps
        trying) and start the watcher thread."""
        if self.running:
            return self
        self._stop.clear()
        self._safe_refresh()
        self._thread = threading.Thread(target=self._run, name="pdp-active-policies",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> ActivePolicies:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.listen:
                try:
                    self._listen_and_poll()
                except Exception as exc:
                    self._listening = False
                    log.warning("LISTEN %s failed (%s); polling every %ss until it is back",
                                ACTIVATION_CHANNEL, exc, self.poll_interval)
                    self._poll_for(self.reconnect_delay)
            else:
                self._poll_for(float("inf"))

    def _poll_for(self, duration: float) -> None:
        """Poll every ``poll_interval`` seconds for ``duration`` seconds or until stopped."""
        end = time.monotonic() + duration
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0 or self._stop.wait(min(self.poll_interval, remaining)):
                return
            self._safe_refresh()

    def _listen_and_poll(self) -> None:
        import psycopg
        from psycopg import sql

        conninfo = self._db.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ACTIVATION_CHANNEL)))
            self._listening = True
            try:
                self._safe_refresh()     # whatever was activated while not listening
                next_poll = time.monotonic() + self.poll_interval
                while not self._stop.is_set():
                    wait = max(min(_TICK, next_poll - time.monotonic()), 0)
                    notified = False
                    for notify in conn.notifies(timeout=wait, stop_after=1):
                        notified = True
                        log.debug("activation notified: %s", _payload(notify.payload))
                    if notified or time.monotonic() >= next_poll:
                        self._safe_refresh()
                        next_poll = time.monotonic() + self.poll_interval
            finally:
                self._listening = False


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
