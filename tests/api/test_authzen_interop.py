"""The AuthZEN interop "Todo" scenario against a real server (``pdp serve``,
gunicorn, two workers), on every backend: the decision table of
``examples/authzen-todo`` — every user × every action, with todos they own and
todos they do not — asked as a Todo PEP asks it, one by one through
``/access/v1/evaluation`` and all at once through ``/access/v1/evaluations``.

The table below is written out by hand from the scenario (it is not generated from
the policies), so a policy change that breaks the scenario fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdp.cli import main
from pdp.service import keys, policies
from tests.live import get, post_json

TODO = Path(__file__).resolve().parents[2] / "examples" / "authzen-todo"

#: The interop's users: PID → (name, email).
USERS = {
    "rick": ("CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
             "rick@the-citadel.com"),
    "morty": ("CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
              "morty@the-citadel.com"),
    "summer": ("CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
               "summer@the-smiths.com"),
    "beth": ("CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
             "beth@the-smiths.com"),
    "jerry": ("CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
              "jerry@the-smiths.com"),
}

#: (action, whose todo) → expected decision per user, in USERS order
#: (rick admin, morty editor, summer editor, beth viewer, jerry viewer).
TABLE = {
    ("can_read_user", None):        (True, True, True, True, True),
    ("can_read_todos", None):       (True, True, True, True, True),
    ("can_create_todo", None):      (True, True, True, False, False),
    ("can_update_todo", "own"):     (True, True, True, False, False),
    ("can_update_todo", "morty"):   (True, True, False, False, False),
    ("can_update_todo", "summer"):  (True, False, True, False, False),
    ("can_update_todo", "rick"):    (True, False, False, False, False),
    ("can_delete_todo", "own"):     (True, True, True, False, False),
    ("can_delete_todo", "morty"):   (True, True, False, False, False),
    ("can_delete_todo", "summer"):  (True, False, True, False, False),
    ("can_delete_todo", "rick"):    (True, False, False, False, False),
}


def rows() -> list[tuple[str, dict, bool]]:
    """(label, AuthZEN evaluation, expected decision) for the whole table."""
    out = []
    for (action, owner), expected in TABLE.items():
        for who, decision in zip(USERS, expected, strict=True):
            pid, email = USERS[who]
            if action == "can_read_user":
                resource = {"type": "user", "id": USERS["beth"][1]}
            elif owner is None:
                resource = {"type": "todo", "id": "todo-1"}
            else:
                owner_email = email if owner == "own" else USERS[owner][1]
                resource = {"type": "todo", "id": f"todo-of-{owner_email}",
                            "properties": {"ownerID": owner_email}}
            out.append((f"{who} {action} {owner or ''}".strip(),
                        {"subject": {"type": "user", "id": pid}, "action": {"name": action},
                         "resource": resource}, decision))
    return out


@pytest.fixture
def todo_server(store, live_server):
    """A real server whose ``default`` set is the Todo scenario; ``(base_url, pep key)``."""
    files = {str(p.relative_to(TODO)): p.read_text(encoding="utf-8")
             for p in sorted(TODO.rglob("*")) if p.suffix in (".policy", ".json")}
    policies.publish(store, files, published_by="tests", activate=True)
    pep = keys.create_key(store, name="todo-pep", roles=("decide",), trusted_claims=True,
                          created_by="tests").secret
    base_url = live_server(workers=2)
    return base_url, pep


def test_the_example_policy_tests_pass():
    result = CliRunner().invoke(main, ["policy", "test", str(TODO)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("41 passed, 0 failed")


def test_the_table_covers_every_user_and_action():
    assert len(rows()) == 5 * 11
    assert {label.split()[1] for label, _, _ in rows()} == {
        "can_read_user", "can_read_todos", "can_create_todo", "can_update_todo",
        "can_delete_todo"}


def test_the_todo_scenario_one_by_one_and_all_at_once(todo_server):
    base_url, pep = todo_server
    auth = {"Authorization": f"Bearer {pep}"}

    status, metadata = get(f"{base_url}/.well-known/authzen-configuration")
    metadata = json.loads(metadata)
    assert status == 200
    assert metadata["access_evaluation_endpoint"] == f"{base_url}/access/v1/evaluation"
    assert metadata["access_evaluations_endpoint"] == f"{base_url}/access/v1/evaluations"

    table = rows()
    wrong = []
    decision_ids = set()
    for label, request, expected in table:
        status, body = post_json(metadata["access_evaluation_endpoint"], request, headers=auth)
        assert status == 200, (label, body)
        if body["decision"] is not expected:
            wrong.append(f"{label}: expected {expected}, got {body['decision']}")
        decision_ids.add(body["context"]["decision_id"])
    assert wrong == []
    assert len(decision_ids) == len(table)

    status, body = post_json(metadata["access_evaluations_endpoint"],
                             {"evaluations": [request for _, request, _ in table]},
                             headers=auth)
    assert status == 200, body
    assert [a["decision"] for a in body["evaluations"]] == [e for _, _, e in table]

    # The interop's batch form: defaults at the top, items that differ.
    rick = USERS["rick"][0]
    status, body = post_json(metadata["access_evaluations_endpoint"], {
        "subject": {"type": "user", "id": USERS["beth"][0]},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "todo-1"},
        "evaluations": [{}, {"action": {"name": "can_create_todo"}},
                        {"subject": {"type": "user", "id": rick},
                         "action": {"name": "can_delete_todo"},
                         "resource": {"type": "todo", "id": "t",
                                      "properties": {"ownerID": "morty@the-citadel.com"}}}],
        "options": {"evaluations_semantic": "deny_on_first_deny"},
    }, headers={**auth, "X-Request-ID": "interop-1"})
    assert status == 200
    assert [a["decision"] for a in body["evaluations"]] == [True, False]


def test_an_unknown_user_gets_nothing(todo_server):
    base_url, pep = todo_server
    status, body = post_json(f"{base_url}/access/v1/evaluation", {
        "subject": {"type": "user", "id": "someone-else"},
        "action": {"name": "can_read_todos"}, "resource": {"type": "todo", "id": "1"}},
        headers={"Authorization": f"Bearer {pep}"})
    assert (status, body["decision"]) == (200, False)
