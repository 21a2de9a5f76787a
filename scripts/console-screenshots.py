#!/usr/bin/env python3
"""Screenshots of the console for docs/console.md: docs/images/console-*.png.

    .venv/bin/python scripts/console-screenshots.py [--out docs/images] [--keep]

Runs ``pdp serve`` on a throwaway SQLite database (in a temporary directory,
removed afterwards unless ``--keep``), seeded with realistic data: two versions of
the example policy set in policies/ (the second active) and a small second set;
an auditor+admin key, three calling services; about 250 decisions spread over
the last 24 hours (allows and denies, an evaluation error, a refused token) made by
the real decision service with the decision time set in the past and appended to
the hash chain; and a few decisions made just now through ``POST /v1/decide``.
Then it signs in with headless Chromium (``/usr/bin/chromium`` through Playwright,
as the browser tests do), runs a chain verification, and saves the pages at
1280 px wide.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdp.audit import chain  # noqa: E402
from pdp.audit.record import build_record  # noqa: E402
from pdp.engine.compiler import compile_policies  # noqa: E402
from pdp.service import keys, policies  # noqa: E402
from pdp.service.active import ActiveVersion  # noqa: E402
from pdp.service.decisions import Check, DecisionInput, DecisionService, Subject  # noqa: E402
from pdp.store.db import Database  # noqa: E402

CHROMIUM = os.environ.get("PDP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
WIDTH = 1280
#: The longest a full-page screenshot may be (px), to keep the PNGs small.
MAX_HEIGHT = 1500

USERS = {  # sub → (roles, department); as policies/data/users.json, plus a stranger
    "alice": (["editor"], "engineering"), "bob": (["viewer"], "sales"),
    "carol": (["admin"], "engineering"), "dave": (["viewer"], "finance"),
    "erin": (["finance"], "finance"), "frank": (["finance", "finance-lead"], "finance"),
    "mallory": ([], "unknown"),
}
DOCUMENTS = [  # id, owner, classification, department, archived
    ("roadmap-2027", "alice", "internal", "engineering", False),
    ("q3-report", "bob", "confidential", "sales", False),
    ("handbook", "carol", "public", "engineering", False),
    ("salaries", "frank", "secret", "finance", False),
    ("design-v1", "alice", "internal", "engineering", True),
    ("pricing", "bob", "internal", "sales", False),
]
INVOICES = [  # id, amount, status, submitted_by
    ("inv-1041", 820.0, "submitted", "bob"),
    ("inv-1042", 15400.0, "submitted", "alice"),
    ("inv-1043", 240.5, "draft", "erin"),
    ("inv-1044", 9900.0, "submitted", "erin"),
]


# --------------------------------------------------------------------------- seeding

def uuid7(at: datetime, rng: random.Random) -> str:
    """A decision id as pdp makes them (UUID v7), for a decision made at ``at``."""
    ms = int(at.timestamp() * 1000)
    rand_a, rand_b = rng.getrandbits(12), rng.getrandbits(62)
    return str(uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64
                        | 0b10 << 62 | rand_b))


class Recorder:
    """The decision sink: keeps the records to append them to the chain."""

    def __init__(self):
        self.records = []

    def record(self, outcome, input, caller):
        self.records.append(build_record(outcome, input))


class Active:
    def __init__(self, version: int, files: dict):
        self.value = ActiveVersion(version, compile_policies(files))

    def find(self, policy_set: str = "default"):
        return self.value if policy_set == "default" else None


def version_files() -> tuple[dict, dict]:
    """Version 1 (older: no archived-document rule, a stricter finance rule) and
    version 2 (the example policy set as it is in policies/)."""
    current = policies.read_policy_dir(ROOT / "policies")
    older = dict(current)
    documents = older["documents.policy"]
    start = documents.index('@owner("team-docs")\n@description("Archived documents')
    end = documents.index("@owner", start + 10)
    older["documents.policy"] = documents[:start] + documents[end:]
    older["billing.policy"] = older["billing.policy"].replace(
        "resource.amount <= 10000", "resource.amount <= 5000").replace(
        "up to 10000", "up to 5000")
    return older, current


def backdate(db: Database, now: datetime) -> None:
    """Publication and activation times as they would be in real life (display
    metadata only: not part of the hash chain): version 1 of ``default`` and the
    ``partners`` set twelve days ago, version 2 five hours ago."""
    import sqlalchemy as sa

    from pdp.store.models import PolicyActivationRow, PolicySetRow, PolicyVersionRow

    old, recent = now - timedelta(days=12, hours=3), now - timedelta(hours=5)
    with db.write() as session:
        for version in session.scalars(sa.select(PolicyVersionRow)):
            version.published_at = recent if version.number == 2 else old
        for set_row in session.scalars(sa.select(PolicySetRow)):
            set_row.created_at = old
        versions = {v.id: v.number for v in session.scalars(sa.select(PolicyVersionRow))}
        for activation in session.scalars(sa.select(PolicyActivationRow)):
            activation.activated_at = recent if versions[activation.version_id] == 2 else old


def random_request(rng: random.Random):
    """(caller, claims, action, resource type, id, attributes, context)."""
    roll = rng.random()
    sub = rng.choice(list(USERS))
    roles, department = USERS[sub]
    claims = {"sub": sub, "roles": roles, "department": department}
    if roll < 0.62:
        doc, owner, classification, dept, archived = rng.choice(DOCUMENTS)
        action = rng.choices(["read", "update", "delete"], [6, 3, 1])[0]
        attributes = {"owner": owner, "classification": classification, "department": dept}
        if archived:
            attributes["archived"] = True
        return ("docs-service", claims, action, "document", doc, attributes,
                {"ip": rng.choice(["10.20.4.17", "10.20.9.3", "203.0.113.50"])})
    if roll < 0.85:
        inv, amount, status, submitted_by = rng.choice(INVOICES)
        action = rng.choices(["read", "approve"], [3, 2])[0]
        return ("billing-service", claims, action, "invoice", inv,
                {"amount": amount, "status": status, "submitted_by": submitted_by},
                {"ip": rng.choice(["10.20.1.8", "10.99.0.23"])})
    path = rng.choice(["/health", "/api/orders", "/api/orders/17", "/admin/users"])
    method = "GET" if path != "/api/orders" or rng.random() < 0.7 else "POST"
    return ("api-gateway", claims, method, "http", f"{method} {path}",
            {"path": path, "method": method, "host": "shop.example"}, {})


def seed(db: Database, rng: random.Random, now: datetime) -> dict:
    older, current = version_files()
    v1 = policies.publish(db, older, published_by="deploy-pipeline", activate=True)
    v2 = policies.publish(db, current, published_by="ops-admin", activate=False)
    policies.activate(db, v2.version.number, activated_by="ops-admin")
    policies.publish(db, {"partners.policy": (
        '@owner("team-partners")\n@description("Partners read the price list.")\n'
        'policy "partner-price-list" {\n  permit read on price-list\n'
        '  when "partner" in subject.roles\n}\n')},
        policy_set="partners", published_by="deploy-pipeline", activate=True)

    backdate(db, now)

    secrets = {
        "console": keys.create_key(db, name="ops-console", roles=("auditor", "admin"),
                                   created_by="screenshots").secret,
        **{name: keys.create_key(db, name=name, roles=("decide",), trusted_claims=True,
                                 created_by="screenshots").secret
           for name in ("docs-service", "billing-service", "api-gateway")},
    }
    callers = {name: keys.authenticate(db, secrets[name])
               for name in ("docs-service", "billing-service", "api-gateway")}

    # The last 24 hours, busier in (Berlin) office hours; version 2 became active
    # five hours ago, before that version 1 decided.
    times = []
    for _ in range(260):
        at = now - timedelta(seconds=rng.uniform(300, 24 * 3600))
        if 5 <= at.hour < 17 or rng.random() < 0.35:
            times.append(at)
    times.sort()
    switch = now - timedelta(hours=5)
    actives = {1: Active(v1.version.number, older), 2: Active(v2.version.number, current)}
    recorder = Recorder()
    for index, at in enumerate(times):
        active = actives[2 if at >= switch else 1]
        service = DecisionService(active, sink=recorder, clock=lambda at=at: at,
                                  id_factory=lambda at=at: uuid7(at, rng))
        caller, claims, action, rtype, rid, attributes, context = random_request(rng)
        subject = Subject(claims=claims)
        if index == len(times) // 3:                   # an evaluation error
            caller, action, rtype, rid = "billing-service", "approve", "invoice", "inv-1045"
            claims = {"sub": "erin", "roles": ["finance"], "department": "finance"}
            subject = Subject(claims=claims)
            attributes = {"amount": "12k", "status": "submitted", "submitted_by": "bob"}
            context = {"ip": "10.20.1.8"}
        if index == 2 * len(times) // 3:               # a token that cannot be verified
            caller, subject = "docs-service", Subject(token="eyJhbGciOiJub25lIn0.e30.")
        request = DecisionInput.of(subject, Check(action, rtype, rid, None, attributes),
                                   context)
        service.decide(callers[caller], request)
    chain.append(db, recorder.records)
    return secrets


# --------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, key: str | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serve(url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update(PDP_DATABASE_URL=url, PDP_AUDIT_MODE="durable", PDP_LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pdp.cli import main; "
                               "sys.exit(main(prog_name='pdp'))",
         "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
        cwd=workdir, env=env, stdout=open(workdir / "server.log", "wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if http("GET", base + "/healthz")[0] == 200:
                return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("pdp serve did not start:\n" + (workdir / "server.log").read_text())
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------- pictures

def shoot(page, path: Path, *, height: int | None = None, max_height: int = MAX_HEIGHT) -> None:
    """Save the page at WIDTH px wide: ``height`` px tall, or as tall as the page
    (at least 600, at most ``max_height``)."""
    if height is None:
        page.set_viewport_size({"width": WIDTH, "height": 600})
        height = page.evaluate("() => document.documentElement.scrollHeight")
        height = min(max(int(height), 600), max_height)
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.screenshot(path=str(path), full_page=False)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
          f"{WIDTH}x{height}, {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pdp-screenshots-"))
    url = f"sqlite:///{workdir / 'pdp.db'}"
    rng = random.Random(6)
    db = Database(url)
    try:
        db.upgrade()
        secrets = seed(db, rng, datetime.now(timezone.utc))
    finally:
        db.dispose()
    process, base = serve(url, workdir)
    try:
        for sub, rid, owner in [("alice", "roadmap-2027", "alice"), ("bob", "handbook", "carol"),
                                ("mallory", "q3-report", "bob")]:
            roles, department = USERS[sub]
            status, body = http("POST", base + "/v1/decide", {
                "subject": {"claims": {"sub": sub, "roles": roles, "department": department}},
                "action": "read", "resource": {"type": "document", "id": rid, "attributes": {
                    "owner": owner, "classification": "internal" if sub != "mallory"
                    else "confidential", "department": "sales"}},
                "context": {"ip": "10.20.4.17"}}, key=secrets["docs-service"])
            assert status == 200, body
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 800})
            page.goto(base + "/console/sign-in")
            shoot(page, out / "console-sign-in.png", height=420)
            page.fill("#key", secrets["console"])
            page.click("#sign-in")
            page.wait_for_url(base + "/console/")
            if page.locator("form#verify-chain").count():
                with page.expect_navigation():
                    page.locator("form#verify-chain button").first.click()
            shoot(page, out / "console-overview.png", max_height=1800)

            page.goto(base + "/console/decisions?limit=20")
            shoot(page, out / "console-decisions.png")

            # A deny decided by a forbid near the top of its file: the policy's
            # source, highlighted, shows without scrolling.
            status, body = http("GET", base + "/v1/decisions?decision=deny&policy_id="
                                "billing-weekdays&limit=1", key=secrets["console"])
            decisions = json.loads(body).get("decisions", []) if status == 200 else []
            if not decisions:
                status, body = http("GET", base + "/v1/decisions?decision=deny&limit=1",
                                    key=secrets["console"])
                decisions = json.loads(body)["decisions"]
            page.goto(f"{base}/console/decisions/{decisions[0]['decision_id']}")
            shoot(page, out / "console-decision.png")

            page.goto(base + "/console/policies/default")
            shoot(page, out / "console-policy-versions.png")
            page.goto(base + "/console/policies/default/versions/2?highlight=billing-weekdays")
            shoot(page, out / "console-policy-version.png")
            page.goto(base + "/console/policies/default/diff?from=1&to=2")
            shoot(page, out / "console-diff.png")
            page.goto(base + "/console/policies/default/versions/1/activate")
            shoot(page, out / "console-activate.png")
            browser.close()
    finally:
        stop(process)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
