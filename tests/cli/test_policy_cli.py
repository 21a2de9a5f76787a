"""``pdp policy check | test | fmt | eval | compile``: the author's tools.

Each command is run through click's test runner (``pdp`` as the root group, so
errors are reported as the real command reports them), and a few through the
installed ``pdp`` script in a subprocess. Exit status: 0 success; 1 a policy
error, a failed test, a file to reformat, or invalid input; 2 a usage error.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdp.cli import main

policy_cli = importlib.import_module("pdp.cli.policy")     # the module (pdp.cli.policy is also the group's name)

REPO = Path(__file__).resolve().parents[2]

OWNER = """\
# Owners read their documents.
policy "doc-owner-read" {
  permit read on document
  when resource.owner == subject.sub
  reason "owners may read their own documents"
}
"""

ARCHIVED = """\
policy "no-archived-edits" {
  forbid update on document
  when resource.archived
}

policy "editors" {
  permit update on document
  when "editor" in subject.roles
}
"""

TESTS = """\
tests:
  - name: owner reads
    request:
      subject: {sub: alice}
      action: read
      resource: {type: document, id: d1, attributes: {owner: alice}}
    expect: allow
    policies: [doc-owner-read]
  - name: stranger does not read
    request:
      subject: {sub: bob}
      action: read
      resource: {type: document, id: d1, attributes: {owner: alice}}
    expect: deny
"""

EDIT_TESTS = """\
tests:
  - name: editor updates
    request:
      subject: {sub: e, roles: [editor]}
      action: update
      resource: {type: document, id: d1, attributes: {archived: false}}
    expect: allow
    errors: 0
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def policy_dir(tmp_path) -> Path:
    return write(tmp_path / "policies", {
        "docs/owner.policy": OWNER,
        "docs/archived.policy": ARCHIVED,
        "docs/owner.test.yaml": TESTS,
        "edit.test.yml": EDIT_TESTS,
        "data/users.json": '{"alice": {"roles": ["editor"]}}',
    })


def run(*args: str, input: str | None = None):
    """``pdp policy ARGS`` through click; stdout and stderr apart."""
    return CliRunner().invoke(main, ["policy", *args], input=input, catch_exceptions=False)


def lines(text: str) -> list[str]:
    return text.splitlines()


# ============================================================================ check

def test_check_a_good_set(policy_dir):
    result = run("check", str(policy_dir))
    assert result.exit_code == 0
    assert result.stdout == "ok: 3 policies in 2 files\n"
    assert result.stderr == ""


def test_check_reports_every_error_of_every_file_with_a_caret(tmp_path):
    d = write(tmp_path / "p", {
        "a.policy": 'policy "a" {\n  permit read update on doc\n}\n',
        "sub/b.policy": 'policy "b" { permit read on doc when a < b < c }\npolicy "c" { permit on }\n',
        "ok.policy": OWNER,
    })
    result = run("check", str(d))
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr
    shown = d.as_posix()
    assert f"{shown}/a.policy:2:15: error: expected 'on' after the action list, got 'update'\n" \
           "    permit read update on doc\n" \
           "                ^\n" in err
    assert f"{shown}/sub/b.policy:1:44: error: comparison operators cannot be chained" in err
    assert f"{shown}/sub/b.policy:2:24: error: the action list is missing" in err
    assert lines(err)[-1] == "3 errors in the policy set"


def test_check_reports_checker_errors(tmp_path):
    d = write(tmp_path / "p", {"a.policy": 'policy "a" {\n  permit read on doc\n  when nope(subject.sub)\n}\n',
                               "b.policy": 'policy "a" { permit read on doc }\n'})
    result = run("check", str(d))
    assert result.exit_code == 1
    assert f"{d.as_posix()}/a.policy:3:" in result.stderr
    assert "nope" in result.stderr
    assert "'a'" in result.stderr or '"a"' in result.stderr          # the duplicate id
    assert lines(result.stderr)[-1].endswith("errors in the policy set")


def test_check_reports_bad_reference_data(tmp_path):
    d = write(tmp_path / "p", {"a.policy": OWNER, "data/users.json": "{nope"})
    result = run("check", str(d))
    assert result.exit_code == 1
    assert "data/users.json" in result.stderr


def test_check_skips_hidden_folders(tmp_path):
    d = write(tmp_path / "p", {"a.policy": OWNER, ".git/broken.policy": "policy {", ".x.policy": "nope"})
    result = run("check", str(d))
    assert (result.exit_code, result.stdout) == (0, "ok: 1 policy in 1 file\n")


def test_check_refuses_a_folder_without_policies(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("check", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert result.stderr == f"error: no '.policy' files under {(tmp_path / 'empty').as_posix()}\n"


@pytest.mark.parametrize("args", [["check"], ["check", "/no/such/dir"], ["check", "--nope", "."]])
def test_usage_errors_exit_2(args):
    assert run(*args).exit_code == 2


def test_a_file_is_not_a_policy_directory(tmp_path):
    (tmp_path / "a.policy").write_text(OWNER)
    assert run("check", str(tmp_path / "a.policy")).exit_code == 2


# ============================================================================ test

def test_test_runs_every_test_file(policy_dir):
    result = run("test", str(policy_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout == "3 passed, 0 failed\n"


def test_test_verbose_lists_passing_tests_too(policy_dir):
    result = run("test", "-v", str(policy_dir))
    shown = policy_dir.as_posix()
    assert lines(result.stdout) == [
        f"PASS {shown}/docs/owner.test.yaml:2: owner reads",
        f"PASS {shown}/docs/owner.test.yaml:9: stranger does not read",
        f"PASS {shown}/edit.test.yml:2: editor updates",
        "3 passed, 0 failed",
    ]


def test_test_prints_one_line_per_failure_and_the_count(policy_dir):
    write(policy_dir, {"more.test.json": json.dumps({"tests": [
        {"name": "archived is not editable",
         "request": {"subject": {"sub": "e", "roles": ["editor"]}, "action": "update",
                     "resource": {"type": "document", "id": "d1", "attributes": {"archived": True}}},
         "expect": "allow"},
        {"name": "an error is counted",
         "request": {"subject": {"sub": "e", "roles": ["editor"]}, "action": "update",
                     "resource": {"type": "document", "id": "d1"}},
         "expect": "deny", "policies": [], "errors": 0},
        {"name": "passes",
         "request": {"subject": {"sub": "e"}, "action": "read", "resource": {"type": "document"}},
         "expect": "deny"},
    ]})})
    result = run("test", str(policy_dir))
    assert result.exit_code == 1
    shown = policy_dir.as_posix()
    out = lines(result.stdout)
    assert out[0] == (f"FAIL {shown}/more.test.json: archived is not editable: expected allow; "
                      "got deny, policies [no-archived-edits], 0 errors")
    assert out[1].startswith(f"FAIL {shown}/more.test.json: an error is counted: expected deny, "
                             "policies [], 0 errors; got deny, policies [no-archived-edits], 1 error: "
                             "no-archived-edits: ")
    assert out[2:] == ["4 passed, 2 failed"]


def test_a_broken_test_file_counts_as_a_failure(policy_dir):
    write(policy_dir, {"bad.test.yaml": "tests:\n  - name: t\n    expect: allow\n",
                       "worse.test.json": "{"})
    result = run("test", str(policy_dir))
    assert result.exit_code == 1
    shown = policy_dir.as_posix()
    assert lines(result.stdout) == [
        f"FAIL {shown}/bad.test.yaml:2: test #1 ('t'): missing 'request' (subject, action, resource "
        "and optional context)",
        f"FAIL {shown}/worse.test.json:1:2: invalid JSON: Expecting property name enclosed in double quotes",
        "3 passed, 2 failed",
    ]


def test_tests_do_not_run_when_the_set_does_not_compile(policy_dir):
    write(policy_dir, {"broken.policy": 'policy "x" { permit }'})
    result = run("test", str(policy_dir))
    assert result.exit_code == 1
    assert f"{policy_dir.as_posix()}/broken.policy:1:21: error:" in result.stderr
    assert lines(result.stdout) == ["FAIL 3 tests not run: the policy set does not compile",
                                    "0 passed, 3 failed"]


def test_an_unreadable_policy_file_still_ends_with_the_count(policy_dir):
    (policy_dir / "latin1.policy").write_bytes(b'policy "caf\xe9" { permit x on y }')
    result = run("test", str(policy_dir))
    assert result.exit_code == 1
    assert f"{policy_dir.as_posix()}/latin1.policy:" in result.stderr and "not UTF-8" in result.stderr
    assert lines(result.stdout)[-1] == "0 passed, 3 failed"
    result = run("check", str(policy_dir))
    assert result.exit_code == 1
    assert f"{policy_dir.as_posix()}/latin1.policy:" in result.stderr and "not UTF-8" in result.stderr


def test_no_test_files_is_a_warning_not_a_failure(tmp_path):
    d = write(tmp_path / "p", {"a.policy": OWNER})
    result = run("test", str(d))
    assert result.exit_code == 0
    assert result.stdout == "0 passed, 0 failed\n"
    assert "warning: no test files" in result.stderr


def many_tests(n: int) -> str:
    case = {"request": {"subject": {"sub": "a"}, "action": "read",
                        "resource": {"type": "document", "attributes": {"owner": "a"}}}, "expect": "allow"}
    return json.dumps({"tests": [{**case, "name": f"t{i}"} for i in range(n)]})


def test_progress_dots_only_on_a_terminal(tmp_path, monkeypatch):
    d = write(tmp_path / "p", {"a.policy": OWNER, "many.test.json": many_tests(600)})
    result = run("test", str(d))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "600 passed, 0 failed\n", "")
    monkeypatch.setattr(policy_cli, "_stderr_is_a_terminal", lambda: True)
    result = run("test", str(d))
    assert result.stdout == "600 passed, 0 failed\n"
    assert result.stderr == "......\n"


# ============================================================================ fmt

MESSY = 'policy "a"{permit read,update on document when (resource.owner==subject.sub)}   # mine\n'
TIDY = 'policy "a" {\n  permit read, update on document\n  when resource.owner == subject.sub\n} # mine\n'


def test_fmt_rewrites_files_and_names_them(tmp_path):
    d = write(tmp_path / "p", {"messy.policy": MESSY, "sub/tidy.policy": TIDY, "notes.txt": "x  y",
                               ".hidden/m.policy": MESSY})
    result = run("fmt", str(d))
    assert result.exit_code == 0
    assert result.stdout == f"{(d / 'messy.policy').as_posix()}\n"
    assert (d / "messy.policy").read_text() == TIDY
    assert (d / "sub/tidy.policy").read_text() == TIDY
    assert (d / ".hidden/m.policy").read_text() == MESSY
    assert run("fmt", str(d)).stdout == ""                # nothing left to do


def test_fmt_check_changes_nothing_and_fails_when_a_file_would_change(tmp_path):
    d = write(tmp_path / "p", {"messy.policy": MESSY, "tidy.policy": TIDY})
    result = run("fmt", "--check", str(d))
    assert result.exit_code == 1
    assert result.stdout == f"{(d / 'messy.policy').as_posix()}\n"
    assert (d / "messy.policy").read_text() == MESSY
    (d / "messy.policy").write_text(TIDY)
    result = run("fmt", "--check", str(d))
    assert (result.exit_code, result.stdout) == (0, "")


def test_fmt_leaves_a_broken_file_alone_and_reports_it(tmp_path):
    d = write(tmp_path / "p", {"broken.policy": 'policy "a" { permit x y on z }  \n', "messy.policy": MESSY})
    result = run("fmt", str(d))
    assert result.exit_code == 1
    assert f"{(d / 'broken.policy').as_posix()}:1:23: error: expected 'on' after the action list" in result.stderr
    assert (d / "broken.policy").read_text() == 'policy "a" { permit x y on z }  \n'
    assert (d / "messy.policy").read_text() == TIDY          # the others are still formatted


def test_fmt_one_file(tmp_path):
    path = tmp_path / "one.policy"
    path.write_text(MESSY)
    result = run("fmt", str(path))
    assert (result.exit_code, result.stdout) == (0, f"{path.as_posix()}\n")
    assert path.read_text() == TIDY


def test_fmt_keeps_the_file_mode(tmp_path):
    path = tmp_path / "one.policy"
    path.write_text(MESSY)
    path.chmod(0o640)
    run("fmt", str(tmp_path))
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.policy"]     # no temporary file left


# ============================================================================ eval

def request_file(tmp_path, request) -> str:
    path = tmp_path / "request.json"
    path.write_text(request if isinstance(request, str) else json.dumps(request))
    return str(path)


def test_eval_prints_the_decision_as_json(policy_dir, tmp_path):
    request = {"subject": {"sub": "alice"}, "action": "read",
               "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}}}
    result = run("eval", str(policy_dir), request_file(tmp_path, request))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"decision": "allow", "policies": ["doc-owner-read"],
                                         "reasons": ["owners may read their own documents"], "errors": []}
    assert result.stdout.startswith('{\n  "decision": "allow",')


def test_eval_exits_0_on_deny_too(policy_dir, tmp_path):
    request = {"subject": {"sub": "bob"}, "action": "update",
               "resource": {"type": "document", "id": "d1", "attributes": {}}}
    result = run("eval", str(policy_dir), request_file(tmp_path, request))
    assert result.exit_code == 0
    decision = json.loads(result.stdout)
    assert decision["decision"] == "deny"
    assert [e["policy"] for e in decision["errors"]] == ["editors", "no-archived-edits"]


def test_eval_reads_stdin(policy_dir):
    request = {"subject": {"sub": "a"}, "action": "read", "resource": {"type": "document"}}
    result = run("eval", str(policy_dir), "-", input=json.dumps(request))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["decision"] == "deny"


def test_eval_honours_context_time(tmp_path):
    d = write(tmp_path / "p", {"a.policy": 'policy "mornings" {\n  permit read on doc\n'
                                            '  when hour(context.time) < 12\n}\n'})
    for time, decision in [("2026-03-02T09:00:00Z", "allow"), ("2026-03-02T15:00:00Z", "deny")]:
        request = {"subject": {}, "action": "read", "resource": {"type": "doc"}, "context": {"time": time}}
        result = run("eval", str(d), "-", input=json.dumps(request))
        assert json.loads(result.stdout)["decision"] == decision


@pytest.mark.parametrize("request_text, message", [
    ('{"subject": ', "invalid JSON: Expecting value"),
    ("[1, 2]", "a request is a JSON object with subject, action, resource and context"),
    ('{"subject": {}, "action": "read"}', "invalid request: resource: missing"),
    ('{"subject": {}, "action": "read", "resource": {"type": "document"}, "context": {"time": "noon"}}',
     "invalid request: context.time: invalid timestamp"),
    ('{"subject": {}, "action": "read", "resource": {"type": "document"}, "extra": 1}',
     "invalid request: unknown request field 'extra'"),
])
def test_eval_refuses_an_invalid_request(policy_dir, tmp_path, request_text, message):
    result = run("eval", str(policy_dir), request_file(tmp_path, request_text))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_eval_of_a_set_that_does_not_compile(tmp_path):
    d = write(tmp_path / "p", {"a.policy": "policy"})
    result = run("eval", str(d), "-", input="{}")
    assert result.exit_code == 1
    assert "a.policy:1:" in result.stderr


# ============================================================================ compile

def test_compile_summarises_the_set(policy_dir):
    result = run("compile", str(policy_dir))
    assert result.exit_code == 0
    shown = policy_dir.as_posix()
    assert lines(result.stdout) == [
        "policies: 3 (2 permit, 1 forbid) in 2 files, 1 data file",
        "resource types: document",
        "actions: read, update",
        f"  no-archived-edits: forbid update on document ({shown}/docs/archived.policy:1)",
        f"  editors: permit update on document ({shown}/docs/archived.policy:6)",
        f"  doc-owner-read: permit read on document ({shown}/docs/owner.policy:2)",
    ]


def test_compile_summary_shows_star_and_quoted_names(tmp_path):
    d = write(tmp_path / "p", {"a.policy": 'policy "x" { permit * on "GET /x" }\n'
                                           'policy "y" { forbid "a b", c on * }\n'})
    out = lines(run("compile", str(d)).stdout)
    assert out[1:3] == ['resource types: "GET /x", *', 'actions: "a b", c, *']


def test_compile_show_source_prints_the_generated_python(policy_dir):
    result = run("compile", "--show-source", str(policy_dir))
    assert result.exit_code == 0
    compile(result.stdout, "<generated>", "exec")           # it is Python
    assert "doc-owner-read" in result.stdout
    assert result.stdout.endswith("\n") and not result.stdout.endswith("\n\n\n")


# ============================================================================ the installed command

def pdp_command(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pdp")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from pdp.cli import main; main()"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([*command, "policy", *args], cwd=cwd, input=input, capture_output=True,
                          text=True, env=env, timeout=120)


def test_the_pdp_command_checks_and_tests(policy_dir):
    done = pdp_command("check", "policies", cwd=policy_dir.parent)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok: 3 policies in 2 files\n", "")
    done = pdp_command("test", "policies", cwd=policy_dir.parent)
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "3 passed, 0 failed")
    assert done.stderr == ""                                # not a terminal: no progress dots


def test_the_pdp_command_reports_errors_on_stderr_with_exit_1(tmp_path):
    write(tmp_path / "p", {"a.policy": 'policy "a" {\n  permit read\n}\n'})
    done = pdp_command("check", "p", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("p/a.policy:3:1: error: expected 'on' after the action list, got '}'\n")
    done = pdp_command("check", cwd=tmp_path)
    assert done.returncode == 2
    assert "Missing argument" in done.stderr


def test_the_example_policy_set_passes_its_own_tests():
    done = pdp_command("test", "policies", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].endswith(" passed, 0 failed")
    done = pdp_command("fmt", "--check", "policies", cwd=REPO)
    assert (done.returncode, done.stdout) == (0, ""), "the example set is in canonical layout"
