"""ActivePolicies: a replica's snapshot of the active versions, on every backend.

Every decision is made entirely by one version and names it; activations reach
every replica without a restart (PostgreSQL: NOTIFY, within 1 s; SQLite: within
the poll interval); a set that does not compile never replaces the active one.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event

from pdp.engine.policyset import PolicySet
from pdp.errors import NotFound, PolicyError
from pdp.service import active as active_module
from pdp.service import policies as service
from pdp.service.active import ActivePolicies, ActiveVersion
from pdp.store.db import Database

ALLOW = 'policy "allow-read" {\n  permit read on document\n}\n'
DENY = 'policy "deny-read" {\n  forbid read on document\n}\n'
BROKEN = 'policy "broken" {\n  permit read on\n}\n'
READ_DOC = {"subject": {"sub": "alice"}, "action": "read",
            "resource": {"type": "document", "id": "d1"}}
#: The outcome each version gives to READ_DOC.
OUTCOME = {1: "allow", 2: "deny"}


def publish(store, text, **kw):
    return service.publish(store, {"p.policy": text}, published_by="test", **kw)


def activate(store, number, policy_set="default"):
    return service.activate(store, number, activated_by="test", policy_set=policy_set)


def wait_for(predicate, timeout):
    """Seconds until ``predicate()`` held, or ``None`` if it did not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


@pytest.fixture
def two_versions(store):
    publish(store, ALLOW)
    publish(store, DENY)
    return store


def test_nothing_is_served_before_an_activation(store):
    publish(store, ALLOW)
    active = ActivePolicies(store)
    active.refresh()
    assert active.find("default") is None and active.versions() == {}
    with pytest.raises(NotFound):
        active.get("default")


def test_get_returns_the_version_number_and_its_policy_set(two_versions):
    activate(two_versions, 1)
    active = ActivePolicies(two_versions)
    assert active.refresh() == ["default"]
    version, policies = active.get("default")
    assert version == 1 and [p["id"] for p in policies.policies] == ["allow-read"]
    assert active.versions() == {"default": 1}
    assert active.refresh() == []          # nothing new: the snapshot stays as it is


def test_a_decision_names_the_version_that_made_it(two_versions):
    active = ActivePolicies(two_versions)
    for number in (1, 2, 1):
        activate(two_versions, number)
        active.refresh()
        result = active.decide(READ_DOC, "default")
        assert (result.policy_set, result.version) == ("default", number)
        assert result.decision.decision == OUTCOME[number]


def test_sets_are_served_side_by_side(store):
    publish(store, ALLOW, activate=True)
    publish(store, DENY, activate=True, policy_set="strict")
    active = ActivePolicies(store)
    active.refresh()
    assert active.decide(READ_DOC).decision.decision == "allow"
    assert active.decide(READ_DOC, "strict").decision.decision == "deny"


def test_get_costs_no_database_round_trip(two_versions):
    activate(two_versions, 1)
    active = ActivePolicies(two_versions)
    active.refresh()
    statements = []
    listener = lambda *args: statements.append(args)  # noqa: E731
    event.listen(two_versions.engine, "before_cursor_execute", listener)
    try:
        for _ in range(1000):
            active.get("default")
            active.decide(READ_DOC)
    finally:
        event.remove(two_versions.engine, "before_cursor_execute", listener)
    assert statements == []


def test_every_decision_is_made_by_exactly_one_version_while_activations_flip(two_versions):
    store = two_versions
    activate(store, 1)
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    with ActivePolicies(store, poll_interval=0.02) as active:
        def decide_in_a_loop():
            while not stop.is_set():
                r = active.decide(READ_DOC)
                seen.append((r.version, r.decision.decision))

        decider = threading.Thread(target=decide_in_a_loop)
        decider.start()
        try:
            for number in (2, 1, 2, 1, 2, 1):
                activate(store, number)
                assert wait_for(lambda: active.get("default").version == number, 5) is not None
                time.sleep(0.02)
        finally:
            stop.set()
            decider.join(10)
    assert {v for v, _ in seen} == {1, 2}
    wrong = [(v, d) for v, d in seen if OUTCOME[v] != d]
    assert wrong == [], f"{len(wrong)} of {len(seen)} decisions mixed versions"


def test_a_bad_policy_set_never_replaces_the_active_one(two_versions):
    activate(two_versions, 1)
    with ActivePolicies(two_versions, poll_interval=0.05) as active:
        with pytest.raises(PolicyError):
            publish(two_versions, BROKEN, activate=True)
        time.sleep(0.2)
        assert active.get("default").version == 1
        assert active.decide(READ_DOC).decision.decision == "allow"


def test_a_compiled_form_that_does_not_load_falls_back_to_the_sources(two_versions,
                                                                      monkeypatch):
    def refuse(_blob):
        raise ValueError("compiled by another pdp release")

    monkeypatch.setattr(PolicySet, "from_bytes", staticmethod(refuse))
    activate(two_versions, 2)
    active = ActivePolicies(two_versions)
    active.refresh()
    assert active.decide(READ_DOC).decision.decision == "deny"


def test_a_version_that_cannot_be_loaded_at_all_leaves_the_served_one(two_versions,
                                                                      monkeypatch):
    activate(two_versions, 1)
    active = ActivePolicies(two_versions)
    active.refresh()

    def refuse(*_args):
        raise ValueError("nope")

    monkeypatch.setattr(PolicySet, "from_bytes", staticmethod(refuse))
    monkeypatch.setattr(active_module, "compile_policies", refuse)
    activate(two_versions, 2)
    active.refresh()
    served = active.get("default")
    assert isinstance(served, ActiveVersion) and served.version == 1
    assert active.decide(READ_DOC).decision.decision == "allow"


def test_start_loads_and_stop_is_prompt(two_versions):
    activate(two_versions, 1)
    active = ActivePolicies(two_versions, poll_interval=30)
    active.start()
    assert active.running and active.get("default").version == 1
    assert active.start() is active           # starting twice is harmless
    began = time.monotonic()
    active.stop()
    assert time.monotonic() - began < 15 and not active.running   # not the 30 s poll interval


def test_the_watcher_survives_a_store_error(tmp_path):
    store = Database(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    try:
        with ActivePolicies(store, poll_interval=0.05) as active:
            time.sleep(0.2)
            assert active.running and "pdp db upgrade" in (active.last_error or "")
            store.upgrade()
            publish(store, ALLOW, activate=True)
            assert wait_for(lambda: active.find("default") is not None, 3) is not None
            assert active.last_error is None
    finally:
        store.dispose()


# --------------------------------------------------------------------------- replicas

def test_another_replica_sees_an_activation_within_the_poll_interval_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    here, there = Database(url), Database(url)
    try:
        here.upgrade()
        publish(here, ALLOW, activate=True)
        publish(here, DENY)
        interval = 0.3
        with ActivePolicies(there, poll_interval=interval) as replica:
            assert replica.get().version == 1
            activate(here, 2)
            # the next poll picks it up (a generous wait: the machine may be busy)
            assert wait_for(lambda: replica.get().version == 2, interval + 10) is not None
    finally:
        here.dispose()
        there.dispose()


@pytest.mark.postgres
def test_another_replica_sees_an_activation_without_polling_on_postgresql(postgres_server):
    name = postgres_server.create(template=postgres_server.migrated_template())
    url = postgres_server.url(name)
    first, second = Database(url), Database(url)
    try:
        publish(first, ALLOW, activate=True)
        publish(first, DENY)
        # Polling every 60 s: only NOTIFY can explain a pickup within 10 s (it takes
        # milliseconds: ~12 ms was measured when LISTEN/NOTIFY was added).
        with ActivePolicies(first, poll_interval=60) as a, \
                ActivePolicies(second, poll_interval=60) as b:
            assert wait_for(lambda: a.listening and b.listening, 5) is not None
            assert (a.get().version, b.get().version) == (1, 1)
            activate(first, 2)
            took = wait_for(lambda: b.get().version == 2 and a.get().version == 2, 10.0)
            assert took is not None, "the other replica did not see the activation before a poll"
            activate(first, 1)                      # a rollback travels the same way
            assert wait_for(lambda: b.get().version == 1, 10.0) is not None
    finally:
        first.dispose()
        second.dispose()
        postgres_server.drop(name)


@pytest.mark.postgres
def test_a_lost_listen_connection_falls_back_to_polling_and_comes_back(postgres_server):
    name = postgres_server.create(template=postgres_server.migrated_template())
    url = postgres_server.url(name)
    store = Database(url)
    try:
        publish(store, ALLOW, activate=True)
        publish(store, DENY)
        with ActivePolicies(store, poll_interval=0.2, reconnect_delay=1.0) as replica:
            assert wait_for(lambda: replica.listening, 5) is not None
            with store.engine.begin() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%%'")
            assert wait_for(lambda: not replica.listening, 5) is not None
            activate(store, 2)
            assert wait_for(lambda: replica.get().version == 2, 2) is not None
            assert wait_for(lambda: replica.listening, 5) is not None
    finally:
        store.dispose()
        postgres_server.drop(name)
