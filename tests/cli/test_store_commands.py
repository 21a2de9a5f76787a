"""The store's commands: ``pdp db upgrade``, ``pdp policy push|versions|activate|
show|diff`` and ``pdp keys create|list|revoke``, through click's CliRunner against
a SQLite store named by PDP_DATABASE_URL."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pdp.cli import main
from pdp.service import keys as key_service
from pdp.store.db import Database

ALLOW = 'policy "allow-read" {\n  permit read on document\n}\n'
DENY = 'policy "deny-read" {\n  forbid read on document\n}\n'
BROKEN_A = 'policy "a" {\n  permit read on\n}\n'
BROKEN_B = 'policy "b" {\n  permit on document\n}\n'


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def pdp(url):
    """Run ``pdp ARGS…``; the store is migrated first."""
    runner = CliRunner()

    def run(*args, expect=0):
        result = runner.invoke(main, list(args), env={"PDP_DATABASE_URL": url})
        assert result.exit_code == expect, (
            f"pdp {' '.join(args)} → {result.exit_code}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}\n{result.exception!r}")
        return result

    run("db", "upgrade")
    return run


@pytest.fixture
def policy_dir(tmp_path):
    def write(files):
        root = tmp_path / f"set{len(list(tmp_path.glob('set*')))}"
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        return str(root)
    return write


# --------------------------------------------------------------------------- db

def test_db_upgrade_migrates_and_is_idempotent(url):
    runner = CliRunner()
    env = {"PDP_DATABASE_URL": url}
    first = runner.invoke(main, ["db", "upgrade"], env=env)
    assert first.exit_code == 0 and "upgraded from empty" in first.stdout
    again = runner.invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and "already at revision" in again.stdout


def test_a_store_that_was_not_upgraded_says_so(url):
    result = CliRunner().invoke(main, ["policy", "versions"], env={"PDP_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "pdp db upgrade" in result.stderr


def test_a_bad_setting_is_reported_not_raised(url):
    result = CliRunner().invoke(main, ["keys", "list"],
                                env={"PDP_DATABASE_URL": url, "PDP_POLL_INTERVAL": "soon"})
    assert result.exit_code == 1 and "PDP_POLL_INTERVAL" in result.stderr


# --------------------------------------------------------------------------- policy

def test_push_publishes_a_directory_as_the_next_version(pdp, policy_dir):
    d = policy_dir({"docs.policy": ALLOW, "data/users.json": "{}"})
    result = pdp("policy", "push", d)
    assert "published default version 1" in result.stdout
    again = pdp("policy", "push", d)
    assert "unchanged: default version 1" in again.stdout


def test_push_refuses_a_set_that_does_not_compile_with_every_diagnostic(pdp, policy_dir):
    d = policy_dir({"a.policy": BROKEN_A, "b.policy": BROKEN_B})
    result = pdp("policy", "push", d, expect=1)
    assert f"{d}/a.policy:3:1: error:" in result.stderr
    assert f"{d}/b.policy:2:" in result.stderr
    assert "2 errors in the policy set" in result.stderr
    assert result.stdout == ""
    assert "no policy set named 'default'" in pdp("policy", "versions", expect=1).stderr


def test_push_with_activate_and_a_named_set(pdp, policy_dir):
    result = pdp("policy", "push", policy_dir({"x.policy": ALLOW}), "--set", "billing",
                 "--activate")
    assert "activated billing version 1" in result.stdout
    listing = pdp("policy", "versions", "--set", "billing", "--json")
    (version,) = json.loads(listing.stdout)
    assert version["active"] and version["published_by"].startswith("cli:")


def test_push_with_a_stale_base_version_is_refused(pdp, policy_dir):
    pdp("policy", "push", policy_dir({"x.policy": ALLOW}), "--base-version", "0")
    result = pdp("policy", "push", policy_dir({"x.policy": DENY}), "--base-version", "0",
                 expect=1)
    assert "is at version 1, not 0" in result.stderr


def test_versions_activate_and_rollback(pdp, policy_dir):
    pdp("policy", "push", policy_dir({"x.policy": ALLOW}))
    pdp("policy", "push", policy_dir({"x.policy": DENY}))
    assert "activated default version 2" in pdp("policy", "activate", "2").stdout
    assert "(was 2)" in pdp("policy", "activate", "1").stdout
    assert "already active" in pdp("policy", "activate", "1").stdout
    lines = pdp("policy", "versions").stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "ACTIVE", "PUBLISHED"]
    assert lines[1].split()[:2] == ["1", "*"]
    assert lines[2].split()[0] == "2" and "*" not in lines[2].split()[1]
    assert "no version 9" in pdp("policy", "activate", "9", expect=1).stderr


def test_show_prints_a_version_and_its_sources(pdp, policy_dir):
    pdp("policy", "push", policy_dir({"x.policy": ALLOW, "data/u.json": '{"a": 1}'}))
    out = pdp("policy", "show", "1").stdout
    assert "version:    1" in out and "policies:   allow-read" in out
    assert "==> x.policy <==\n" + ALLOW in out
    assert "==> data/u.json <==\n" + '{"a": 1}' in out
    assert pdp("policy", "show", "1", "--file", "x.policy").stdout == ALLOW
    assert pdp("policy", "show", "2", expect=1).stderr.startswith("error:")


def test_diff_prints_the_unified_diff_then_the_policy_changes(pdp, policy_dir):
    pdp("policy", "push", policy_dir({"x.policy": ALLOW}))
    pdp("policy", "push", policy_dir({"x.policy": DENY}))
    out = pdp("policy", "diff", "1", "2").stdout
    assert out.startswith("--- a/x.policy\n+++ b/x.policy\n")
    assert '-policy "allow-read" {' in out and '+policy "deny-read" {' in out
    assert out.rstrip().splitlines()[-3:] == [
        "policies added:   deny-read", "policies removed: allow-read", "policies changed: -"]


def test_usage_errors_exit_2(pdp):
    assert pdp("policy", "push", expect=2)
    assert pdp("policy", "activate", "zero", expect=2)
    assert pdp("keys", "create", "--name", "x", "--role", "root", expect=2)


# --------------------------------------------------------------------------- keys

def test_keys_create_prints_the_key_alone_on_the_last_line(pdp, url):
    result = pdp("keys", "create", "--name", "gateway", "--role", "decide",
                 "--policy-set", "default", "--trusted-claims")
    key = result.stdout.splitlines()[-1]
    assert key.startswith("pdp_") and " " not in key
    database = Database(url)
    try:
        caller = key_service.authenticate(database, key)
    finally:
        database.dispose()
    assert caller.name == "gateway" and caller.trusted_claims
    assert caller.policy_sets == frozenset({"default"})


def test_keys_list_never_shows_a_key(pdp):
    key = pdp("keys", "create", "--name", "a", "--role", "admin", "--role", "auditor"
              ).stdout.splitlines()[-1]
    plain = pdp("keys", "list").stdout
    as_json = pdp("keys", "list", "--json").stdout
    assert key not in plain and key not in as_json and key[4:12] not in plain + as_json
    assert "admin,auditor" in plain
    (entry,) = json.loads(as_json)
    assert entry["name"] == "a" and entry["revoked_at"] is None
    assert "key_hash" not in entry


def test_keys_revoke(pdp, url):
    key = pdp("keys", "create", "--name", "a", "--role", "decide").stdout.splitlines()[-1]
    assert "revoked key 'a'" in pdp("keys", "revoke", "a").stdout
    assert "already revoked" in pdp("keys", "revoke", "a").stdout
    assert "no key named 'ghost'" in pdp("keys", "revoke", "ghost", expect=1).stderr
    assert pdp("keys", "list", "--active").stdout.splitlines()[1:] == []
    database = Database(url)
    try:
        assert key_service.authenticate(database, key) is None
    finally:
        database.dispose()


def test_a_duplicate_key_name_is_refused(pdp):
    pdp("keys", "create", "--name", "a", "--role", "decide")
    result = pdp("keys", "create", "--name", "a", "--role", "decide", expect=1)
    assert "exists" in result.stderr and result.stdout == ""
