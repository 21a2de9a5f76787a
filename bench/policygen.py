"""Deterministic generator of comparable policy sets for pdp, Cedar and Casbin.

One small intermediate form (policies whose conditions are tuples, see ``Expr``
below) is generated from a seed and rendered three ways:

* pdp: ``.policy`` source text, one file per resource type plus ``org.policy``;
* Cedar: policy text (``@id`` annotations), plus an entity document holding one
  principal and one resource entity per request;
* Casbin: a model (``FastEnforcer``, indexed on resource type and action) and one
  policy row per (resource type, action) of each policy, whose ``eval()`` rule is
  the condition in Casbin's expression syntax.

Requests are generated alongside, half of them aimed at a randomly chosen policy
(most of its conditions made true), half at random; every request carries every
attribute any policy reads, so no engine ever meets an evaluation error (the three
engines handle errors differently; see docs/performance.md).

This module is imported by ``bench/engine.py``; it has no pytest-collectable name.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# --------------------------------------------------------------------------- vocabulary

TYPES = [
    "document", "folder", "spreadsheet", "presentation", "invoice",
    "purchase_order", "contract", "ticket", "incident", "project",
    "repository", "build", "deployment", "dataset", "report",
    "dashboard", "customer", "employee_record", "expense", "calendar_event",
]
ACTIONS = ["read", "create", "update", "delete", "share"]
DEPARTMENTS = ["engineering", "sales", "finance", "hr", "legal", "marketing", "support", "ops"]
CLASSIFICATIONS = ["public", "internal", "confidential", "secret", "top-secret"]
CLASSIFICATION_WEIGHTS = [30, 35, 20, 10, 5]
GENERIC_ROLES = ["viewer", "editor", "manager", "approver", "contributor", "analyst"]
TYPE_ROLE_SUFFIXES = ["reader", "writer", "admin"]

# Network of project k: 10.<k % 200>.0.0/16. Requests come from these, from other
# 10.x addresses, from the public internet, or from the blocked 203.0.113.0/24.
BLOCKED_NET = "203.0.113.0/24"


def project_name(k: int) -> str:
    return f"prj-{k}"


def project_net(k: int) -> str:
    return f"10.{k % 200}.0.0/16"


# --------------------------------------------------------------------------- intermediate form
#
# Expr is a tuple:
#   ("role", name)               "name" in subject.roles
#   ("notrole", name)            "name" not in subject.roles
#   ("cmp", op, lhs, rhs)        op in == != >= < ; lhs/rhs are ("attr", root, name) or ("lit", v)
#   ("attr", root, name)         a boolean attribute used as a condition
#   ("hour", op, h)              hour(context.time) op h   (op in >= <)
#   ("cidr", cidr)               cidr_contains(cidr, context.ip)
#   ("not", e) ("and", e, ...) ("or", e, ...)


def attr(root: str, name: str):
    return ("attr", root, name)


def lit(v):
    return ("lit", v)


@dataclass
class Policy:
    id: str
    effect: str                      # "permit" | "forbid"
    actions: list | None             # None = *
    types: list | None               # None = *
    when: tuple | None = None
    unless: tuple | None = None
    kind: str = ""
    file: str = "org.policy"


@dataclass
class Request:
    subject: dict
    action: str
    resource_type: str
    resource_id: str
    resource: dict                   # attributes
    time: str                        # RFC 3339, UTC
    ip: str
    principal_id: str


@dataclass
class Workload:
    policies: list
    requests: list
    vocabulary: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- org-wide policies

def org_policies() -> list[Policy]:
    """The ~10 organisation-wide policies on `*` (the first five are used at size 10)."""
    P = Policy
    return [
        P("org-suspended-deny", "forbid", None, None, when=attr("subject", "suspended"), kind="org"),
        P("org-admin-all", "permit", None, None, when=("role", "admin"), kind="org"),
        P("org-auditor-read", "permit", ["read"], None, when=("role", "auditor"), kind="org"),
        P("org-blocked-network", "forbid", None, None, when=("cidr", BLOCKED_NET), kind="org"),
        P("org-archived-readonly", "forbid", ["update", "delete", "share"], None,
          when=attr("resource", "archived"), kind="org"),
        P("org-legal-hold", "forbid", ["delete"], None, when=attr("resource", "legal_hold"), kind="org"),
        P("org-public-read", "permit", ["read"], None, when=attr("resource", "public"), kind="org"),
        P("org-top-secret", "forbid", None, None,
          when=("and", ("cmp", "==", attr("resource", "classification"), lit("top-secret")),
                ("notrole", "ts-cleared")), kind="org"),
        P("org-share-outside-dept", "forbid", ["share"], None,
          when=("cmp", "!=", attr("resource", "classification"), lit("public")),
          unless=("cmp", "==", attr("resource", "department"), attr("subject", "department")),
          kind="org"),
        P("org-change-window", "forbid", ["create", "update", "delete"], None,
          unless=("or", ("and", ("hour", ">=", 6), ("hour", "<", 22)), ("role", "oncall")),
          kind="org"),
    ]


# --------------------------------------------------------------------------- specific policies

KINDS = [
    # kind, weight
    ("role", 22),
    ("project", 28),
    ("owner", 10),
    ("department", 14),
    ("hours", 10),
    ("classification", 9),
    ("network", 7),
]


def _pick_actions(rng: random.Random, kind: str) -> list:
    if kind == "owner":
        pool = ["read", "update", "delete", "share"]
    elif kind in ("classification", "network"):
        pool = ACTIONS
    else:
        pool = ACTIONS
    n = rng.choices([1, 2, 3], [50, 35, 15])[0]
    acts = rng.sample(pool, n)
    return [a for a in ACTIONS if a in acts]      # canonical order


def _pick_types(rng: random.Random) -> list:
    if rng.random() < 0.1:
        return sorted(rng.sample(TYPES, 2), key=TYPES.index)
    return [rng.choice(TYPES)]


def specific_policies(rng: random.Random, n: int) -> tuple[list[Policy], dict]:
    n_projects = max(4, n // 12)
    vocab = {"projects": n_projects, "roles": set(), "type_roles": set()}
    kinds, weights = zip(*KINDS)
    out = []
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        types = _pick_types(rng)
        acts = _pick_actions(rng, kind)
        t0 = types[0]
        pid = f"{t0}-{kind}-{i}"
        file = f"types/{t0}.policy"
        if kind == "role":
            if rng.random() < 0.5:
                role = f"{t0}:{rng.choice(TYPE_ROLE_SUFFIXES)}"
            else:
                role = rng.choice(GENERIC_ROLES)
            vocab["roles"].add(role)
            p = Policy(pid, "permit", acts, types, when=("role", role))
        elif kind == "project":
            k = rng.randrange(n_projects)
            role = f"{project_name(k)}:{rng.choice(['member', 'lead', 'viewer'])}"
            vocab["roles"].add(role)
            p = Policy(pid, "permit", acts, types,
                       when=("and", ("cmp", "==", attr("resource", "project"), lit(project_name(k))),
                             ("role", role)))
        elif kind == "owner":
            p = Policy(pid, "permit", acts, types,
                       when=("cmp", "==", attr("resource", "owner"), attr("subject", "sub")),
                       unless=attr("resource", "locked") if rng.random() < 0.5 else None)
        elif kind == "department":
            role = rng.choice(GENERIC_ROLES)
            vocab["roles"].add(role)
            p = Policy(pid, "permit", acts, types,
                       when=("and", ("cmp", "==", attr("resource", "department"), attr("subject", "department")),
                             ("role", role)))
        elif kind == "hours":
            role = rng.choice(GENERIC_ROLES + [f"{t0}:{s}" for s in TYPE_ROLE_SUFFIXES])
            vocab["roles"].add(role)
            start = rng.choice([7, 8, 9])
            end = rng.choice([17, 18, 19])
            p = Policy(pid, "permit", acts, types,
                       when=("and", ("role", role), ("hour", ">=", start), ("hour", "<", end)))
        elif kind == "classification":
            cls = rng.choice(["confidential", "secret", "internal"])
            need = {"internal": 1, "confidential": 2, "secret": 3}[cls]
            p = Policy(pid, "forbid", acts, types,
                       when=("cmp", "==", attr("resource", "classification"), lit(cls)),
                       unless=("cmp", ">=", attr("subject", "clearance"), lit(need)))
        elif kind == "network":
            k = rng.randrange(n_projects)
            p = Policy(pid, "forbid", acts, types,
                       when=("cmp", "==", attr("resource", "project"), lit(project_name(k))),
                       unless=("cidr", project_net(k)))
        else:  # pragma: no cover
            raise AssertionError(kind)
        p.kind = kind
        p.file = file
        out.append(p)
    vocab["roles"] = sorted(vocab["roles"])
    return out, vocab


def generate_policies(size: int, seed: int) -> tuple[list[Policy], dict]:
    rng = random.Random(f"policies:{seed}:{size}")
    org = org_policies()
    n_org = 5 if size < 100 else 10
    n_org = min(n_org, size)
    specific, vocab = specific_policies(rng, size - n_org)
    return org[:n_org] + specific, vocab


# --------------------------------------------------------------------------- requests

_BASE_DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)      # a Monday


def _random_time(rng: random.Random, business: bool | None = None) -> str:
    day = _BASE_DAY + timedelta(days=rng.randrange(7))
    if business is True:
        hour = rng.randrange(9, 17)
    elif business is False:
        hour = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23])
    else:
        hour = rng.choices(range(24), [1] * 6 + [3] * 3 + [8] * 8 + [3] * 5 + [1] * 2)[0]
    t = day + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_ip(rng: random.Random, n_projects: int) -> str:
    r = rng.random()
    if r < 0.55:
        net = rng.randrange(n_projects) % 200
        return f"10.{net}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if r < 0.80:
        return f"10.{rng.randrange(200, 256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if r < 0.96:
        return f"198.51.100.{rng.randrange(1, 255)}"
    return f"203.0.113.{rng.randrange(1, 255)}"


def _ip_in(rng: random.Random, cidr: str) -> str:
    a, b = cidr.split(".")[:2]
    return f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _atoms(e):
    """The atoms of a conjunction (an atom that is not an ``and`` is its own list)."""
    if e is None:
        return []
    if e[0] == "and":
        out = []
        for x in e[1:]:
            out.extend(_atoms(x))
        return out
    return [e]


def generate_requests(policies: list[Policy], vocab: dict, count: int, seed: int) -> list[Request]:
    rng = random.Random(f"requests:{seed}:{len(policies)}:{count}")
    n_projects = vocab.get("projects", 4)
    roles_pool = list(vocab.get("roles") or GENERIC_ROLES)
    specific = [p for p in policies if p.kind != "org"] or policies
    out = []
    for i in range(count):
        subject = {
            "sub": f"u{rng.randrange(500)}",
            "roles": sorted(set(rng.sample(roles_pool, min(len(roles_pool), rng.randrange(0, 4))))),
            "department": rng.choice(DEPARTMENTS),
            "clearance": rng.randrange(0, 5),
            "suspended": rng.random() < 0.03,
        }
        for special, prob in (("admin", 0.01), ("auditor", 0.04), ("oncall", 0.06), ("ts-cleared", 0.05)):
            if rng.random() < prob:
                subject["roles"] = sorted(set(subject["roles"]) | {special})
        rtype = rng.choice(TYPES)
        action = rng.choice(ACTIONS)
        resource = {
            "owner": f"u{rng.randrange(500)}",
            "department": rng.choice(DEPARTMENTS),
            "project": project_name(rng.randrange(n_projects)),
            "classification": rng.choices(CLASSIFICATIONS, CLASSIFICATION_WEIGHTS)[0],
            "archived": rng.random() < 0.08,
            "legal_hold": rng.random() < 0.05,
            "public": rng.random() < 0.08,
            "locked": rng.random() < 0.1,
        }
        time = _random_time(rng)
        ip = _random_ip(rng, n_projects)

        if rng.random() < 0.6:
            # Aim at one policy: its type and action, and most of its conditions true.
            p = rng.choice(specific)
            rtype = rng.choice(p.types or TYPES)
            action = rng.choice(p.actions or ACTIONS)
            for a in _atoms(p.when):
                if rng.random() > 0.8:
                    continue
                if a[0] == "role":
                    subject["roles"] = sorted(set(subject["roles"]) | {a[1]})
                elif a[0] == "cmp" and a[1] == "==" and a[2][0] == "attr" and a[3][0] == "lit":
                    resource[a[2][2]] = a[3][1]
                elif a[0] == "cmp" and a[1] == "==" and a[3][0] == "attr":
                    if a[2][2] == "owner":
                        resource["owner"] = subject["sub"]
                    else:
                        resource[a[2][2]] = subject[a[3][2]]
                elif a[0] == "hour":
                    time = _random_time(rng, business=True)
            for a in _atoms(p.unless):
                if rng.random() < 0.5:
                    continue
                if a[0] == "cidr":
                    ip = _ip_in(rng, a[1])
                elif a[0] == "cmp" and a[1] == ">=":
                    subject["clearance"] = max(subject["clearance"], a[3][1])
                elif a[0] == "attr":
                    resource[a[2]] = False
        out.append(Request(subject=subject, action=action, resource_type=rtype,
                           resource_id=f"r{i}", resource=resource, time=time, ip=ip,
                           principal_id=f"s{i}"))
    return out


def generate(size: int, requests: int, seed: int) -> Workload:
    policies, vocab = generate_policies(size, seed)
    reqs = generate_requests(policies, vocab, requests, seed)
    return Workload(policies, reqs, vocab)


# --------------------------------------------------------------------------- pdp rendering

def _q(s: str) -> str:
    return json.dumps(s)


def _lit_pdp(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _q(v)
    return repr(v)


def render_pdp_expr(e, top: bool = True) -> str:
    tag = e[0]
    if tag == "role":
        return f"{_q(e[1])} in subject.roles"
    if tag == "notrole":
        return f"{_q(e[1])} not in subject.roles"
    if tag == "attr":
        return f"{e[1]}.{e[2]}"
    if tag == "lit":
        return _lit_pdp(e[1])
    if tag == "cmp":
        return f"{render_pdp_expr(e[2], False)} {e[1]} {render_pdp_expr(e[3], False)}"
    if tag == "hour":
        return f"hour(context.time) {e[1]} {e[2]}"
    if tag == "cidr":
        return f"cidr_contains({_q(e[1])}, context.ip)"
    if tag == "not":
        return f"not ({render_pdp_expr(e[1])})"
    if tag in ("and", "or"):
        parts = []
        for x in e[1:]:
            s = render_pdp_expr(x, False)
            parts.append(f"({s})" if x[0] in ("and", "or") else s)
        return f" {tag} ".join(parts)
    raise AssertionError(tag)


def _names(items: list | None) -> str:
    return "*" if items is None else ", ".join(items)


def render_pdp_policy(p: Policy) -> str:
    lines = [f"policy {_q(p.id)} {{", f"  {p.effect} {_names(p.actions)} on {_names(p.types)}"]
    if p.when is not None:
        lines.append(f"  when {render_pdp_expr(p.when)}")
    if p.unless is not None:
        lines.append(f"  unless {render_pdp_expr(p.unless)}")
    lines.append("}")
    return "\n".join(lines)


def render_pdp_files(policies: list[Policy]) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    for p in policies:
        files.setdefault(p.file, []).append(render_pdp_policy(p))
    return {name: "\n\n".join(body) + "\n" for name, body in sorted(files.items())}


# --------------------------------------------------------------------------- Cedar rendering

_CEDAR_ROOT = {"subject": "principal", "resource": "resource", "context": "context"}


def render_cedar_expr(e) -> str:
    tag = e[0]
    if tag == "role":
        return f"principal.roles.contains({_q(e[1])})"
    if tag == "notrole":
        return f"!principal.roles.contains({_q(e[1])})"
    if tag == "attr":
        return f"{_CEDAR_ROOT[e[1]]}.{e[2]}"
    if tag == "lit":
        return _lit_pdp(e[1])
    if tag == "cmp":
        return f"{render_cedar_expr(e[2])} {e[1]} {render_cedar_expr(e[3])}"
    if tag == "hour":
        # hour(t) >= h  <=>  time since midnight (UTC) >= h hours; likewise for <.
        return f'context.time.toTime() {e[1]} duration("{e[2]}h")'
    if tag == "cidr":
        return f'context.ip.isInRange(ip({_q(e[1])}))'
    if tag == "not":
        return f"!({render_cedar_expr(e[1])})"
    if tag in ("and", "or"):
        op = " && " if tag == "and" else " || "
        return op.join(f"({render_cedar_expr(x)})" for x in e[1:])
    raise AssertionError(tag)


def render_cedar_policy(p: Policy) -> str:
    if p.actions is None:
        act = "action"
    elif len(p.actions) == 1:
        act = f'action == Action::"{p.actions[0]}"'
    else:
        act = "action in [" + ", ".join(f'Action::"{a}"' for a in p.actions) + "]"
    when = render_cedar_expr(p.when) if p.when is not None else None
    if p.types is None:
        res = "resource"
    elif len(p.types) == 1:
        res = f"resource is {p.types[0]}"
    else:
        res = "resource"
        is_any = " || ".join(f"resource is {t}" for t in p.types)
        when = f"({is_any}) && ({when})" if when else is_any
    text = f"@id({_q(p.id)})\n{p.effect}(principal, {act}, {res})"
    if when is not None:
        text += f"\nwhen {{ {when} }}"
    if p.unless is not None:
        text += f"\nunless {{ {render_cedar_expr(p.unless)} }}"
    return text + ";"


def render_cedar(policies: list[Policy]) -> str:
    return "\n\n".join(render_cedar_policy(p) for p in policies) + "\n"


def cedar_entities(requests: list[Request]) -> list[dict]:
    ents = []
    for r in requests:
        ents.append({"uid": {"type": "User", "id": r.principal_id}, "attrs": dict(r.subject), "parents": []})
        ents.append({"uid": {"type": r.resource_type, "id": r.resource_id}, "attrs": dict(r.resource),
                     "parents": []})
    return ents


def cedar_request(r: Request) -> dict:
    ctx = {"time": {"__extn": {"fn": "datetime", "arg": r.time}},
           "ip": {"__extn": {"fn": "ip", "arg": r.ip}}}
    return {
        "principal": {"type": "User", "id": r.principal_id},
        "action": {"type": "Action", "id": r.action},
        "resource": {"type": r.resource_type, "id": r.resource_id},
        # Pre-serialised: cedarpy accepts the context as a JSON string and would
        # otherwise json.dumps the dict on every call.
        "context": json.dumps(ctx),
    }


# --------------------------------------------------------------------------- Casbin rendering

CASBIN_MODEL = """
[request_definition]
r = type, act, sub, obj, ctx

[policy_definition]
p = type, act, rule, eft, id

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = eval(p.rule)
"""
#: FastEnforcer index: policy rows are bucketed by (type, act), the first two
#: fields, and the request's first two values pick the bucket; so the matcher
#: only has to evaluate the rule.
CASBIN_KEY_ORDER = [0, 1]

_CASBIN_ROOT = {"subject": "r.sub", "resource": "r.obj", "context": "r.ctx"}


def render_casbin_expr(e) -> str:
    tag = e[0]
    if tag == "role":
        return f"{_q(e[1])} in r.sub.roles"
    if tag == "notrole":
        return f"{_q(e[1])} not in r.sub.roles"
    if tag == "attr":
        return f"{_CASBIN_ROOT[e[1]]}.{e[2]}"
    if tag == "lit":
        v = e[1]
        return repr(v) if not isinstance(v, str) else _q(v)
    if tag == "cmp":
        return f"{render_casbin_expr(e[2])} {e[1]} {render_casbin_expr(e[3])}"
    if tag == "hour":
        return f"hour(r.ctx.time) {e[1]} {e[2]}"
    if tag == "cidr":
        return f"ipMatch(r.ctx.ip, {_q(e[1])})"
    if tag == "not":
        return f"not ({render_casbin_expr(e[1])})"
    if tag in ("and", "or"):
        return f" {tag} ".join(f"({render_casbin_expr(x)})" for x in e[1:])
    raise AssertionError(tag)


def casbin_rule(p: Policy) -> str:
    parts = []
    if p.when is not None:
        parts.append(f"({render_casbin_expr(p.when)})")
    if p.unless is not None:
        parts.append(f"not ({render_casbin_expr(p.unless)})")
    return " and ".join(parts) if parts else "True"


def casbin_rows(policies: list[Policy]) -> list[list[str]]:
    """One row per (type, action) of each policy: Casbin's indexed enforcer has no
    wildcard bucket, so `*` is expanded to the 20 types / 5 actions."""
    rows = []
    for p in policies:
        rule = casbin_rule(p)
        eft = "allow" if p.effect == "permit" else "deny"
        for t in (p.types or TYPES):
            for a in (p.actions or ACTIONS):
                rows.append([t, a, rule, eft, p.id])
    return rows


def casbin_request(r: Request) -> tuple:
    t = datetime.strptime(r.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (r.resource_type, r.action, dict(r.subject), dict(r.resource), {"time": t, "ip": r.ip})


def casbin_hour(t) -> int:
    """hour(t) for Casbin: Casbin has no time-of-day built-in, so it is registered."""
    return t.hour
