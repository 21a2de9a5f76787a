"""Publishing, activating, listing, showing and diffing policy-set versions: the
store's contract, on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from pdp.errors import Conflict, NotFound, PdpError, PolicyError
from pdp.service import policies as service
from pdp.store import policies as repo

ALLOW_READ = """\
policy "allow-read" {
  permit read on document
}
"""
DENY_READ = """\
policy "deny-read" {
  forbid read on document
}
"""
ALLOW_WRITE = """\
policy "allow-write" {
  permit write on document
}
"""
BROKEN = """\
policy "broken" {
  permit read on
}
"""
ALSO_BROKEN = """\
policy "also-broken" {
  permit on document
}
"""


def publish(store, files, **kw):
    kw.setdefault("published_by", "cli:test")
    return service.publish(store, files, **kw)


# --------------------------------------------------------------------------- publishing

def test_the_first_publish_creates_version_1_of_the_default_set(store):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    result = publish(store, {"docs.policy": ALLOW_READ}, published_by="ops-key")
    v = result.version
    assert result.created and not result.unchanged and not result.activated
    assert (v.policy_set, v.number, v.policy_ids, v.active) == (
        "default", 1, ("allow-read",), False)
    assert v.published_by == "ops-key"
    assert v.published_at.tzinfo == timezone.utc
    assert before <= v.published_at <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert v.content_hash == repo.content_hash({"docs.policy": ALLOW_READ})


def test_versions_are_numbered_1_2_3_per_set(store):
    numbers = [publish(store, {"a.policy": text}).version.number
               for text in (ALLOW_READ, DENY_READ, ALLOW_WRITE)]
    other = publish(store, {"a.policy": ALLOW_READ}, policy_set="billing").version
    assert numbers == [1, 2, 3]
    assert (other.policy_set, other.number) == ("billing", 1)
    assert [v.number for v in service.list_versions(store)] == [1, 2, 3]


def test_a_version_keeps_its_sources_and_reference_data(store):
    files = {"docs.policy": ALLOW_READ, "sub/more.policy": ALLOW_WRITE,
             "data/users.json": '{"alice": {"roles": ["admin"]}}'}
    publish(store, files)
    shown = service.show_version(store, 1)
    assert dict(shown.files) == files
    assert shown.version.policy_ids == ("allow-read", "allow-write")
    assert [(p["id"], p["file"]) for p in shown.policies] == [
        ("allow-read", "docs.policy"), ("allow-write", "sub/more.policy")]


def test_a_version_keeps_a_compiled_form_that_loads_without_parsing(store):
    from pdp.engine.policyset import PolicySet

    publish(store, {"docs.policy": ALLOW_READ}, activate=True)
    with store.read() as session:
        (active,) = repo.active_compiled(session, ["default"])
    loaded = PolicySet.from_bytes(active.compiled)
    assert [p["id"] for p in loaded.policies] == ["allow-read"]


def test_a_set_that_does_not_compile_is_refused_whole_with_every_error(store):
    with pytest.raises(PolicyError) as caught:
        publish(store, {"ok.policy": ALLOW_READ, "a.policy": BROKEN, "b.policy": ALSO_BROKEN})
    files = [d.file for d in caught.value.diagnostics]
    assert "a.policy" in files and "b.policy" in files
    assert all(d.line > 0 for d in caught.value.diagnostics)
    assert service.list_policy_sets(store) == []


def test_publishing_the_latest_content_again_creates_no_version(store):
    first = publish(store, {"docs.policy": ALLOW_READ}).version
    again = publish(store, {"docs.policy": ALLOW_READ}, published_by="someone-else")
    assert again.unchanged and not again.created
    assert again.version == first
    assert [v.number for v in service.list_versions(store)] == [1]


def test_publishing_the_content_of_an_older_version_creates_a_new_one(store):
    publish(store, {"docs.policy": ALLOW_READ})
    publish(store, {"docs.policy": DENY_READ})
    back = publish(store, {"docs.policy": ALLOW_READ})
    assert back.created and back.version.number == 3


def test_the_content_hash_covers_paths_and_contents_in_any_order():
    a = repo.content_hash({"x.policy": "1", "y.policy": "2"})
    assert a == repo.content_hash({"y.policy": "2", "x.policy": "1"})
    assert a.startswith("sha256:") and len(a) == len("sha256:") + 64
    assert a != repo.content_hash({"x.policy": "2", "y.policy": "1"})
    assert a != repo.content_hash({"x.policy": "1", "z.policy": "2"})
    assert repo.content_hash({"ab": "c"}) != repo.content_hash({"a": "bc"})


def test_base_version_guards_against_a_lost_update(store):
    publish(store, {"docs.policy": ALLOW_READ}, base_version=0)
    publish(store, {"docs.policy": DENY_READ}, base_version=1)
    with pytest.raises(Conflict) as caught:
        publish(store, {"docs.policy": ALLOW_WRITE}, base_version=1)
    assert "version 2" in caught.value.message
    assert [v.number for v in service.list_versions(store)] == [1, 2]


def test_publish_can_activate_in_the_same_step(store):
    result = publish(store, {"docs.policy": ALLOW_READ}, activate=True)
    assert result.activated and result.version.active
    again = publish(store, {"docs.policy": ALLOW_READ}, activate=True)
    assert again.unchanged and not again.activated and again.version.active


@pytest.mark.parametrize("files, code", [
    ({"docs.txt": "hello"}, "unexpected_file"),
    ({"../escape.policy": ALLOW_READ}, "invalid_path"),
    ({"/abs.policy": ALLOW_READ}, "invalid_path"),
    ({".hidden/x.policy": ALLOW_READ}, "invalid_path"),
    ({"a//b.policy": ALLOW_READ}, "invalid_path"),
])
def test_only_policy_files_and_data_with_clean_paths_are_accepted(store, files, code):
    with pytest.raises(PolicyError) as caught:
        publish(store, {"ok.policy": ALLOW_READ, **files})
    assert [d.code for d in caught.value.diagnostics] == [code]


def test_reference_data_over_the_limit_is_refused(store):
    half = '{"x": "' + "a" * 40 + '"}'
    with pytest.raises(PolicyError) as caught:
        publish(store, {"p.policy": ALLOW_READ, "data/a.json": half, "data/b.json": half},
                max_data_bytes=80)
    assert [d.code for d in caught.value.diagnostics] == ["data_too_large"]
    assert service.list_policy_sets(store) == []


def test_invalid_reference_data_is_refused(store):
    with pytest.raises(PolicyError) as caught:
        publish(store, {"p.policy": ALLOW_READ, "data/users.json": '{"a": '})
    assert [d.file for d in caught.value.diagnostics] == ["data/users.json"]


def test_an_empty_set_is_refused(store):
    with pytest.raises(PdpError, match="no '.policy' files"):
        publish(store, {})
    with pytest.raises(PdpError, match="no '.policy' files"):
        publish(store, {"data/x.json": "{}"})


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "-x"])
def test_policy_set_names_are_validated(store, name):
    with pytest.raises(PdpError):
        publish(store, {"docs.policy": ALLOW_READ}, policy_set=name)


def test_check_is_a_dry_run(store):
    result = service.check({"docs.policy": ALLOW_READ})
    assert result.policy_ids == ("allow-read",)
    with pytest.raises(PolicyError):
        service.check({"docs.policy": BROKEN})
    assert service.list_policy_sets(store) == []


# --------------------------------------------------------------------------- activation

def test_a_new_set_has_no_active_version(store):
    publish(store, {"docs.policy": ALLOW_READ})
    (info,) = service.list_policy_sets(store)
    assert (info.name, info.active_version, info.latest_version) == ("default", None, 1)


def test_activation_is_one_version_per_set_and_rollback_is_activating_an_older_one(store):
    publish(store, {"docs.policy": ALLOW_READ})
    publish(store, {"docs.policy": DENY_READ})
    first = service.activate(store, 2, activated_by="cli:a")
    assert first.changed and first.previous is None and first.version.active
    rollback = service.activate(store, 1, activated_by="cli:b")
    assert rollback.changed and rollback.previous == 2
    assert [v.active for v in service.list_versions(store)] == [True, False]
    history = service.activation_history(store)
    assert [(a.number, a.activated_by) for a in history] == [(2, "cli:a"), (1, "cli:b")]


def test_activating_the_active_version_changes_nothing(store):
    publish(store, {"docs.policy": ALLOW_READ}, activate=True)
    result = service.activate(store, 1, activated_by="cli:a")
    assert not result.changed
    assert len(service.activation_history(store)) == 1


def test_activating_what_does_not_exist_is_not_found(store):
    publish(store, {"docs.policy": ALLOW_READ})
    with pytest.raises(NotFound):
        service.activate(store, 2, activated_by="cli:a")
    with pytest.raises(NotFound):
        service.activate(store, 1, activated_by="cli:a", policy_set="nope")
    assert service.list_policy_sets(store)[0].active_version is None


def test_a_bad_policy_set_never_replaces_the_active_one(store):
    publish(store, {"docs.policy": ALLOW_READ}, activate=True)
    with pytest.raises(PolicyError):
        publish(store, {"docs.policy": BROKEN}, activate=True)
    (info,) = service.list_policy_sets(store)
    assert (info.active_version, info.latest_version) == (1, 1)


# --------------------------------------------------------------------------- reading

def test_unknown_sets_and_versions_are_not_found(store):
    with pytest.raises(NotFound):
        service.list_versions(store, "nope")
    publish(store, {"docs.policy": ALLOW_READ})
    with pytest.raises(NotFound):
        service.show_version(store, 7)
    with pytest.raises(NotFound):
        service.get_version(store, 7)
    assert service.get_version(store, 1).number == 1


def test_diff_shows_the_sources_and_the_policies_that_changed(store):
    publish(store, {"docs.policy": ALLOW_READ + "\n" + ALLOW_WRITE, "old.policy": DENY_READ})
    changed_write = ALLOW_WRITE.replace("permit write", "permit write, update")
    publish(store, {"docs.policy": ALLOW_READ + "\n" + changed_write,
                    "new.policy": 'policy "fresh" {\n  permit list on folder\n}\n'})
    d = service.diff_versions(store, 1, 2)
    assert (d.added, d.removed, d.changed) == (("fresh",), ("deny-read",), ("allow-write",))
    assert "--- a/docs.policy\n+++ b/docs.policy\n" in d.unified
    assert "-  permit write on document\n+  permit write, update on document\n" in d.unified
    assert "--- /dev/null\n+++ b/new.policy\n" in d.unified
    assert "--- a/old.policy\n+++ /dev/null\n" in d.unified
    assert (d.files_added, d.files_removed, d.files_changed) == (
        ("new.policy",), ("old.policy",), ("docs.policy",))


def test_moving_or_reindenting_a_policy_is_not_a_change(store):
    publish(store, {"a.policy": ALLOW_READ})
    publish(store, {"b.policy": "# moved\n" + ALLOW_READ.replace("  permit", "    permit")})
    d = service.diff_versions(store, 1, 2)
    assert (d.added, d.removed, d.changed) == ((), (), ())
    assert d.unified


def test_diff_of_a_version_with_itself_is_empty(store):
    publish(store, {"a.policy": ALLOW_READ})
    d = service.diff_versions(store, 1, 1)
    assert d.unified == "" and (d.added, d.removed, d.changed) == ((), (), ())


# --------------------------------------------------------------------------- concurrency

def _race(n, target):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _policy(i):
    return f'policy "p{i}" {{\n  permit read on document\n}}\n'


def test_racing_publishers_all_get_a_version_without_gaps_or_mixing(store):
    n = 8
    results = _race(n, lambda i: publish(store, {"p.policy": _policy(i)},
                                         published_by=f"writer-{i}"))
    assert all(not isinstance(r, Exception) for r in results), results
    numbers = sorted(r.version.number for r in results)
    assert numbers == list(range(1, n + 1))
    for i, r in enumerate(results):
        shown = service.show_version(store, r.version.number)
        assert dict(shown.files) == {"p.policy": _policy(i)}
        assert shown.version.published_by == f"writer-{i}"
        assert shown.version.policy_ids == (f"p{i}",)


def test_racing_publishers_to_a_new_set_create_it_once(store):
    results = _race(6, lambda i: publish(store, {"p.policy": _policy(i)}, policy_set="fresh"))
    assert all(not isinstance(r, Exception) for r in results), results
    assert [s.name for s in service.list_policy_sets(store)] == ["fresh"]
    assert sorted(r.version.number for r in results) == [1, 2, 3, 4, 5, 6]


def test_racing_publishers_on_the_same_base_version_one_wins_the_others_conflict(store):
    publish(store, {"p.policy": ALLOW_READ})
    results = _race(6, lambda i: publish(store, {"p.policy": _policy(i)}, base_version=1))
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and won[0].version.number == 2
    assert len(lost) == 5 and all(isinstance(e, Conflict) for e in lost), lost
    assert [v.number for v in service.list_versions(store)] == [1, 2]


def test_racing_activations_leave_exactly_one_active_version(store):
    for text in (ALLOW_READ, DENY_READ, ALLOW_WRITE):
        publish(store, {"p.policy": text})
    results = _race(6, lambda i: service.activate(store, i % 3 + 1, activated_by=f"a{i}"))
    assert all(not isinstance(r, Exception) for r in results), results
    active = [v.number for v in service.list_versions(store) if v.active]
    assert len(active) == 1
    assert service.activation_history(store)[-1].number == active[0]


# --------------------------------------------------------------------------- a directory

def test_read_policy_dir_collects_policies_and_data_only(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "data" / "org").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "docs.policy").write_text(ALLOW_READ)
    (tmp_path / "sub" / "deeper" / "x.policy").write_text(ALLOW_WRITE)
    (tmp_path / "data" / "users.json").write_text("{}")
    (tmp_path / "data" / "org" / "teams.json").write_text("[]")
    (tmp_path / "data" / "notes.txt").write_text("no")
    (tmp_path / "top.json").write_text("{}")
    (tmp_path / "docs.test.yaml").write_text("tests: []")
    (tmp_path / ".git" / "hidden.policy").write_text(BROKEN)
    (tmp_path / ".swap.policy").write_text(BROKEN)
    assert service.read_policy_dir(tmp_path) == {
        "docs.policy": ALLOW_READ, "sub/deeper/x.policy": ALLOW_WRITE,
        "data/users.json": "{}", "data/org/teams.json": "[]"}


def test_read_policy_dir_refuses_files_that_are_not_utf8(tmp_path):
    (tmp_path / "bad.policy").write_bytes(b"# fine\npolicy \xff")
    with pytest.raises(PolicyError) as caught:
        service.read_policy_dir(tmp_path)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.file, diagnostic.line, diagnostic.column) == (
        "invalid_encoding", "bad.policy", 2, 8)


def test_read_policy_dir_needs_a_directory(tmp_path):
    with pytest.raises(PdpError):
        service.read_policy_dir(tmp_path / "missing")
