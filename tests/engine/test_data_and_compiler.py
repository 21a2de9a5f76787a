"""Spec §1 — reference data and policy-set files; compile_policies and load_policy_dir."""

import pytest

from engine_support import req
from pdp import Decision, PdpError, PolicyError, PolicySet, compile_policies, load_policy_dir
from pdp.lang.data import load_data

POLICY = 'policy "team" {\n  permit read on document\n  when subject.sub in data.org.teams[resource.team]\n}\n'


# --------------------------------------------------------------------------- data

def test_data_file_names_become_paths():
    data, diags = load_data({"data/users.json": '{"alice": 1}', "data/org/teams.json": '{"red": []}',
                             "data/org/deep/x.json": "[1, 2]", "policies/a.policy": "", "README.md": "x"})
    assert diags == []
    assert data == {"users": {"alice": 1}, "org": {"teams": {"red": []}, "deep": {"x": [1, 2]}}}


def test_data_any_json_value_at_the_top():
    data, diags = load_data({"data/nets.json": '["10.0.0.0/8"]', "data/limit.json": "5"})
    assert data == {"nets": ["10.0.0.0/8"], "limit": 5} and diags == []


def test_invalid_json_names_file_line_and_column():
    _, diags = load_data({"data/users.json": '{\n  "a": 1,\n  "b": }\n'})
    (d,) = diags
    assert (d.code, d.file, d.line, d.column) == ("invalid_json", "data/users.json", 3, 8)
    assert d.source_line == '  "b": }'


def test_nan_and_infinity_are_refused():
    for text in ("[NaN]", '{"a": Infinity}', "-Infinity"):
        (d,) = load_data({"data/x.json": text})[1]
        assert d.code == "invalid_data" and "not a JSON value" in d.message and d.line == 1


def test_duplicate_object_keys_are_refused_with_position():
    (d,) = load_data({"data/x.json": '{"users": [{"a": 1}, {"a": 2}],\n "b": {"k": 1, "k": 2}}'})[1]
    assert (d.code, d.line, d.column) == ("invalid_data", 2, 16)
    assert "'k'" in d.message


def test_a_name_both_a_file_and_a_folder_is_refused():
    data, diags = load_data({"data/org.json": "{}", "data/org/teams.json": "{}"})
    (d,) = diags
    assert d.code == "invalid_data" and "data.org" in d.message
    assert "data/org.json" in d.message and "data/org/" in d.message


def test_data_over_the_size_limit_is_refused():
    data, diags = load_data({"data/a.json": "[" + "1," * 100 + "1]"}, max_bytes=100)
    assert data == {} and [d.code for d in diags] == ["data_too_large"]


# --------------------------------------------------------------------------- compile_policies

def test_compile_policies_parses_policies_and_loads_data():
    ps = compile_policies({"policies/team.policy": POLICY, "data/org/teams.json": '{"red": ["alice"]}',
                           "policies/team.test.yaml": "tests: []", "README.md": "# hi"})
    assert isinstance(ps, PolicySet) and len(ps) == 1
    d = ps.decide(req(attributes={"team": "red"}))
    assert isinstance(d, Decision) and d.decision == "allow"


def test_compile_policies_reports_every_error_of_every_file_at_once():
    files = {
        "a.policy": 'policy "x" {\n  permit read document\n}\n',                  # syntax
        "b.policy": 'policy "y" {\n  permit * on *\n  when lower(1, 2)\n}\n',     # arity (checker)
        "data/bad.json": "{",
    }
    with pytest.raises(PolicyError) as info:
        compile_policies(files)
    files_with_errors = {d.file for d in info.value.diagnostics}
    assert files_with_errors == {"a.policy", "b.policy", "data/bad.json"}
    assert isinstance(info.value, PdpError)


def test_compile_policies_duplicate_ids_are_an_error():
    with pytest.raises(PolicyError) as info:
        compile_policies({"a.policy": 'policy "x" { permit * on * }', "b.policy": 'policy "x" { forbid * on * }'})
    assert any("x" in d.message for d in info.value.diagnostics)


def test_compile_policies_data_size_limit():
    with pytest.raises(PolicyError) as info:
        compile_policies({"a.policy": POLICY, "data/org/teams.json": '{"red": ["alice"]}'}, max_data_bytes=5)
    assert [d.code for d in info.value.diagnostics] == ["data_too_large"]


def test_an_empty_policy_set_denies_everything():
    ps = compile_policies({})
    assert ps.decide(req()) == Decision("deny", [], [], [])


# --------------------------------------------------------------------------- load_policy_dir

def test_load_policy_dir_reads_policies_in_sub_folders_and_data(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "team.policy").write_text(POLICY)
    (tmp_path / "data" / "org").mkdir(parents=True)
    (tmp_path / "data" / "org" / "teams.json").write_text('\ufeff{"red": ["alice"]}')
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "junk.policy").write_text("not a policy")
    (tmp_path / ".hidden.policy").write_text("not a policy")
    (tmp_path / "docs" / "team.test.yaml").write_text("tests: []")
    ps = load_policy_dir(tmp_path)
    assert [p["file"] for p in ps.policies] == ["docs/team.policy"]
    assert ps.decide(req(attributes={"team": "red"})).decision == "allow"


def test_load_policy_dir_reports_files_that_are_not_utf8(tmp_path):
    (tmp_path / "a.policy").write_bytes(b'policy "x" {\n  permit * on * when "\xff" == "x"\n}\n')
    with pytest.raises(PolicyError) as info:
        load_policy_dir(tmp_path)
    (d,) = info.value.diagnostics
    assert (d.code, d.file, d.line) == ("invalid_encoding", "a.policy", 2)


def test_load_policy_dir_data_size_limit_without_reading(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.json").write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(PolicyError) as info:
        load_policy_dir(tmp_path, max_data_bytes=100)
    assert [d.code for d in info.value.diagnostics] == ["data_too_large"]


def test_load_policy_dir_needs_a_directory(tmp_path):
    with pytest.raises(PdpError):
        load_policy_dir(tmp_path / "missing")
