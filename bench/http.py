#!/usr/bin/env python3
"""HTTP benchmark: ``POST /v1/decide`` under gunicorn, driven by ``wrk``, in the same
run as the ceiling of the same stack (bench/ceiling_app.py: a Flask endpoint that
parses and returns a small JSON body, under the same gunicorn settings) and Cerbos
(its server binary, the same rules in bench/decide_policies/cerbos/, its
``/api/check/resources``, audit log off and on).

For each server and configuration: start it, check one request by hand (pdp and
Cerbos must answer allow), warm up with wrk, then measure with wrk (a Lua script
posts pre-formatted requests and prints the latency percentiles as JSON in
``done()``), stop it. Prints one table: server, config, JWT mode, audit,
requests/s, p50, p99, ratio to the ceiling of the same configuration.

JWT modes:

* ``claims``   — no token: pdp gets ``subject.claims`` (a key with trusted claims),
                 Cerbos the principal in clear;
* ``same``     — every request carries the same ES256 token;
* ``distinct`` — every request carries a different ES256 token: ``--tokens`` of
                 them (150,000) are minted beforehand; the wrk threads of a run take
                 them in turn from one position, and the measurement starts after
                 the tokens its warm-up used, so that no token is sent twice to a
                 server (whose cache of verified tokens would otherwise answer it);
                 a line that had to reuse tokens says so in its note.

    .venv/bin/python bench/http.py                        # full run, ~5 minutes
    .venv/bin/python bench/http.py --quick                # smoke run, seconds
    .venv/bin/python bench/http.py --servers pdp --configs gthread --jwt distinct

Needs ``wrk`` on PATH; Cerbos rows need its binary (``--cerbos``, ``$CERBOS_BIN``,
``bench/.cache/package/cerbos-linux-x64`` — see bench/README.md — or ``cerbos`` on
PATH), else they are skipped with a note. See docs/performance.md.
"""

from __future__ import annotations

# This file is named http.py: as a script, its directory comes first on sys.path and
# would shadow the standard library's ``http`` package. Drop it before any import.
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.append(_HERE)              # last: for benchhost, never before the stdlib

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

from benchhost import host  # noqa: E402

HERE = Path(_HERE)
ROOT = HERE.parent
POLICIES = HERE / "decide_policies"
CACHE = HERE / ".cache"
VENV_BIN = Path(sys.executable).parent

ISSUER = "https://idp.bench.example"
AUDIENCE = "pdp-bench"

ALL_SERVERS = ("ceiling", "pdp", "cerbos")
ALL_CONFIGS = ("sync", "gthread")
ALL_JWT = ("claims", "same", "distinct")

# The subject and the resource of every request: alice (viewer, engineering) reads a
# confidential engineering document of bob's → allow (doc-viewer-read; the
# department forbid is evaluated and does not apply).
SUBJECT = {"sub": "alice", "roles": ["viewer"], "department": "engineering"}
RESOURCE = {"type": "document", "id": "d-42",
            "attributes": {"owner": "bob", "classification": "confidential",
                           "department": "engineering"}}
CONTEXT = {"ip": "10.1.2.3"}


# --------------------------------------------------------------------------- the Lua side

LUA = r"""
-- bench/http.py: posts the bodies of a file (one JSON document a line), cycling;
-- done() prints the summary and latency percentiles as one JSON line.
-- Arguments: the file, the number of wrk threads, and the lines to send: from
-- line `first` to before `last` (0-based; all of them by default). Each thread
-- sends its own share of that range, in order, and starts again at its share's
-- beginning only when it has sent all of it.
local reqs = {}
local n = 0
local idx = 1
local lo = 1
local hi = 1
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", nil, nil, line)
    end
  end
  f:close()
  local threads = tonumber(args[2]) or 1
  local first = math.min(tonumber(args[3]) or 0, n - 1)
  local last = math.max(math.min(tonumber(args[4]) or n, n), first + 1)
  local k = (tid or 1) - 1
  lo = first + math.floor((last - first) * k / threads) + 1
  hi = math.max(first + math.floor((last - first) * (k + 1) / threads), lo)
  idx = lo
end

function request()
  local r = reqs[idx]
  idx = idx + 1
  if idx > hi then idx = lo end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p75":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,' ..
    '"max":%.1f,"mean":%.1f,"stdev":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, latency.stdev))
end
"""


# --------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: str, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return                                  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s")


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> dict[int, float]:
    """User + system CPU seconds of each live process of process group ``pgid``."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:                  # fields[2] is the 5th field, pgrp
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return out


def group_thread_cpu_seconds(pgid: int) -> dict[tuple[int, int], float]:
    """User + system CPU seconds of each thread (``(pid, tid)``) of the live
    processes of process group ``pgid``."""
    out: dict[tuple[int, int], float] = {}
    for pid in group_cpu_seconds(pgid):
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[(pid, int(task.name))] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def machine() -> dict:
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[:1]
    return {**host(),
            "wrk": wrk_version[0].split(" Copyright")[0].strip() if wrk_version else "?"}


# --------------------------------------------------------------------------- workload

@dataclass
class Workload:
    """Files of request bodies (one a line) per target and JWT mode."""

    dir: Path
    tokens: list[str] = field(default_factory=list)

    def file(self, name: str, bodies: list[str]) -> Path:
        path = self.dir / f"{name}.jsonl"
        path.write_text("\n".join(bodies) + "\n", encoding="utf-8")
        return path


def pdp_body(mode: str, token: str | None) -> str:
    subject = {"claims": SUBJECT} if mode == "claims" else {"token": token}
    return json.dumps({"subject": subject, "action": "read", "resource": RESOURCE,
                       "context": CONTEXT}, separators=(",", ":"))


def cerbos_body(mode: str, token: str | None) -> str:
    resource = {"kind": RESOURCE["type"], "id": RESOURCE["id"], "attr": RESOURCE["attributes"]}
    if mode == "claims":
        principal = {"id": SUBJECT["sub"], "roles": SUBJECT["roles"],
                     "attr": {"department": SUBJECT["department"]}}
        aux = None
        resource["policyVersion"] = "default"
    else:
        # The principal's id is what the caller knows; roles and department come from
        # the verified token (policy version "jwt" reads request.aux_data.jwt).
        principal = {"id": SUBJECT["sub"], "roles": ["user"]}
        aux = {"jwt": {"token": token}}
        resource["policyVersion"] = "jwt"
    body = {"requestId": "bench", "principal": principal,
            "resources": [{"actions": ["read"], "resource": resource}]}
    if aux:
        body["auxData"] = aux
    return json.dumps(body, separators=(",", ":"))


def mint_tokens(var_dir: Path, count: int) -> list[str]:
    """``count`` distinct ES256 tokens of pdp's development key (as ``pdp token mint``)."""
    import jwt

    from pdp.api.tokens import DEV_ALGORITHM, dev_signing_key

    key = dev_signing_key(var_dir)
    signer = key.pyjwk()
    now = int(time.time())
    headers = {"kid": key.kid, "typ": "JWT"}
    out = []
    for _ in range(count):
        claims = {**SUBJECT, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 4 * 3600,
                  "jti": uuid.uuid4().hex}
        out.append(jwt.encode(claims, signer, algorithm=DEV_ALGORITHM, headers=headers))
    return out


# --------------------------------------------------------------------------- servers

@dataclass
class Target:
    server: str            # ceiling, pdp, cerbos
    config: str            # sync, gthread, go
    jwt: str               # claims, same, distinct (ceiling: the body of "distinct")
    audit: str             # "none yet", "off", "file"
    url: str = ""
    headers: dict = field(default_factory=dict)


class PdpStack:
    """A store with the benchmark's policy set, a key, tokens; gunicorn per config."""

    def __init__(self, work: Path, database_url: str | None = None):
        self.work = work
        self.var = work / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ,
                    "PDP_DATABASE_URL": database_url or f"sqlite:///{work / 'pdp.db'}",
                    "PDP_DEV_MODE": "1",
                    "PDP_JWKS": str(self.var / "dev-jwks.json"),
                    "PDP_JWT_ISSUER": ISSUER,
                    "PDP_JWT_AUDIENCE": AUDIENCE,
                    "PDP_LOG_LEVEL": "INFO",
                    "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
        self.env.pop("PDP_JWT_HS_SECRET", None)
        self.env.pop("PDP_AUDIT_MODE", None)
        self.key = ""

    @staticmethod
    def has_decision_log() -> bool:
        """Whether this pdp has a decision log (``PDP_AUDIT_MODE``)."""
        from pdp.config import Settings

        return hasattr(Settings, "audit_mode") or "audit_mode" in getattr(
            Settings, "__dataclass_fields__", {})

    def audit_label(self, mode: str | None) -> str:
        if mode is None:
            return "none yet"
        if mode == "off":
            return "off"
        backend = self.env["PDP_DATABASE_URL"].split(":", 1)[0].split("+", 1)[0]
        return f"{mode} ({'SQLite' if backend == 'sqlite' else backend})"

    def pdp(self, *args: str) -> str:
        proc = subprocess.run([str(VENV_BIN / "pdp"), *args], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"pdp {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def prepare(self) -> None:
        from pdp.api.tokens import dev_signing_key

        dev_signing_key(self.var)                  # writes var/dev-jwks.json
        self.pdp("db", "upgrade")
        self.pdp("policy", "push", str(POLICIES / "pdp"), "--activate")
        self.key = self.pdp("keys", "create", "--name", "bench", "--role", "decide",
                            "--trusted-claims").strip().splitlines()[-1]

    def start(self, app: str, config: str, workers: int, threads: int, port: int,
              logfile: Path, audit: str | None = None) -> subprocess.Popen:
        bind = f"127.0.0.1:{port}"
        env = dict(self.env)
        if audit is not None:
            env["PDP_AUDIT_MODE"] = audit
        shutil.rmtree(self.env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        Path(self.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
        if app == "pdp" and config == "gthread":
            cmd = [str(VENV_BIN / "pdp"), "serve", "--bind", bind, "--workers", str(workers),
                   "--threads", str(threads), "--no-migrate"]
        else:
            # pdp serve has no --worker-class: gunicorn directly, pdp's configuration.
            cmd = [str(VENV_BIN / "gunicorn"), "-c", "python:pdp.api.gunicorn_conf",
                   "--worker-class", config, "--workers", str(workers),
                   "--threads", str(threads if config == "gthread" else 1), "--bind", bind]
            cmd += (["--pythonpath", str(HERE), "ceiling_app:app"] if app == "ceiling"
                    else ["pdp.api.wsgi:app"])
        out = logfile.open("ab")
        return subprocess.Popen(cmd, cwd=self.work, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


class CerbosServer:
    def __init__(self, binary: Path, work: Path, jwks: Path):
        self.binary = binary
        self.work = work
        self.jwks = jwks

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True)
        return "Cerbos " + (out.stdout.splitlines()[0].strip() if out.stdout else "?")

    def start(self, audit: bool, port: int, logfile: Path) -> subprocess.Popen:
        audit_path = self.work / "cerbos-audit.log"
        audit_path.unlink(missing_ok=True)
        config = {
            "server": {"httpListenAddr": f"127.0.0.1:{port}",
                       "grpcListenAddr": f"127.0.0.1:{free_port()}"},
            "engine": {"defaultPolicyVersion": "default"},
            "telemetry": {"disabled": True},
            "storage": {"driver": "disk",
                        "disk": {"directory": str(POLICIES / "cerbos"), "watchForChanges": False}},
            "auxData": {"jwt": {"keySets": [{"id": "local", "local": {"file": str(self.jwks)}}]}},
            "audit": {"enabled": audit, "accessLogsEnabled": audit, "decisionLogsEnabled": audit,
                      "backend": "file", "file": {"path": str(audit_path)}},
        }
        conf = self.work / f"cerbos-{'audit' if audit else 'noaudit'}.yaml"
        conf.write_text(json.dumps(config, indent=2))    # JSON is YAML
        out = logfile.open("ab")
        env = {**os.environ, "CERBOS_NO_TELEMETRY": "1"}
        return subprocess.Popen([str(self.binary), "server", f"--config={conf}",
                                 "--log-level=warn"], cwd=self.work, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def find_cerbos(given: str | None) -> Path | None:
    for candidate in (given, os.environ.get("CERBOS_BIN"),
                      str(CACHE / "package" / "cerbos-linux-x64"), shutil.which("cerbos")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


# --------------------------------------------------------------------------- wrk

def run_wrk(url: str, headers: dict[str, str], bodies: Path, lua: Path, *, threads: int,
            connections: int, duration: float, timeout_s: int = 5,
            lines: tuple[int, int] | None = None) -> dict:
    """One wrk run; the bodies sent are the file's lines ``lines`` (``[first,
    last)``, 0-based; all by default), each wrk thread its own share in order."""
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
           "--timeout", f"{timeout_s}s", "-s", str(lua),
           "-H", "Content-Type: application/json"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [url, "--", str(bodies), str(threads)]
    if lines is not None:
        cmd += [str(lines[0]), str(lines[1])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise RuntimeError(f"wrk printed no result (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}")


@dataclass
class Row:
    server: str
    config: str
    jwt: str
    audit: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float | None = None      # server CPU time (all its processes) per request
    cpu_split: str = ""              # each process's share of that CPU time, in %
    #: CPU per request of the server's threads other than each process's main
    #: thread (pdp: the decision log's writer, the policy watcher; gthread: the
    #: request threads too)
    other_threads_cpu_us: float | None = None
    ratio: float | None = None
    note: str = ""


def measure(target: Target, bodies: Path, lua: Path, args, pgid: int) -> Row:
    # Distinct bodies (tokens) are never sent twice: the measurement gets the file's
    # lines from 1 (line 0 is the one checked by hand) up to a split in proportion
    # to the run's length, the warm-up those after it.
    lines = count_lines(bodies)
    split = 1 + round((lines - 1) * args.duration / (args.duration + max(args.warmup, 0)))
    measured = (1, split) if lines > 2 else (0, lines)
    if args.warmup > 0:
        run_wrk(target.url, target.headers, bodies, lua, threads=args.wrk_threads,
                connections=args.connections, duration=args.warmup,
                lines=(split, lines) if lines > 2 and split < lines else (0, lines))
    cpu_before = group_cpu_seconds(pgid)
    threads_before = group_thread_cpu_seconds(pgid)
    res = run_wrk(target.url, target.headers, bodies, lua, threads=args.wrk_threads,
                  connections=args.connections, duration=args.duration, lines=measured)
    cpu_after = group_cpu_seconds(pgid)
    threads_after = group_thread_cpu_seconds(pgid)
    other = sum(used - threads_before.get(key, 0.0) for key, used in threads_after.items()
                if key[0] != key[1])
    used = {pid: cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after}
    cpu = sum(used.values())
    # How the work was shared between processes (gunicorn: the workers; keep-alive
    # connections stay with the worker that accepted them).
    busiest = sorted((u for u in used.values() if u > 0), reverse=True)
    split = "/".join(f"{100 * u / cpu:.0f}" for u in busiest[:4]) if cpu > 0 else ""
    secs = res["duration_us"] / 1e6
    errors = sum(res["errors"].values())
    return Row(target.server, target.config, target.jwt, target.audit,
               rps=res["requests"] / secs if secs else 0.0,
               p50_ms=res["latency_us"]["p50"] / 1000, p99_ms=res["latency_us"]["p99"] / 1000,
               requests=res["requests"], errors=errors,
               cpu_us=cpu * 1e6 / res["requests"] if res["requests"] else None,
               cpu_split=split,
               other_threads_cpu_us=other * 1e6 / res["requests"] if res["requests"] else None,
               note=_reuse_note(lines, measured[1] - measured[0],
                                res["requests"] + args.connections))


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _reuse_note(lines: int, available: int, sent: int) -> str:
    """For a file of distinct bodies (tokens): say when the measurement sent more
    bodies than its share of the file (so some went twice, and a cache may have
    answered them). ``sent`` counts the requests in flight at the end too; each
    wrk thread has its own part of the share, so one that ran ahead of the others
    may repeat a little before this says so."""
    if lines <= 1 or sent <= available:
        return ""
    return f"bodies reused: about {sent:,} sent, {available:,} distinct"


# --------------------------------------------------------------------------- checks

def check_pdp(url: str, key: str, body: str) -> None:
    status, answer = post(url, body, {"Authorization": f"Bearer {key}"})
    if status != 200 or answer.get("decision") != "allow":
        raise RuntimeError(f"pdp did not allow the benchmark request: {status} {answer}")


def check_cerbos(url: str, body: str) -> None:
    status, answer = post(url, body, {})
    try:
        effect = answer["results"][0]["actions"]["read"]
    except (KeyError, IndexError, TypeError):
        effect = None
    if status != 200 or effect != "EFFECT_ALLOW":
        raise RuntimeError(f"Cerbos did not allow the benchmark request: {status} {answer}")


# --------------------------------------------------------------------------- table

def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def render(rows: list[Row]) -> str:
    head = ["server", "config", "JWT mode", "audit", "requests/s", "p50 ms", "p99 ms",
            "vs ceiling", "server CPU µs/req", "CPU split %", "errors"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["--------", "--------", "----------", "--------",
                             "----------:", "------:", "------:", "---------:", "----------------:",
                             "-----------", "------:"]) + "|"]
    for r in rows:
        ratio = f"{r.ratio * 100:.0f} %" if r.ratio is not None else "—"
        lines.append("| " + " | ".join([
            r.server, r.config, r.jwt, r.audit, fmt_int(r.rps), f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}", ratio, fmt_int(r.cpu_us) if r.cpu_us is not None else "—",
            r.cpu_split or "—", str(r.errors)]) + " |")
    return "\n".join(lines)


CONFIG_LABEL = {"sync": "2 sync", "gthread": "2×{t} gthread", "go": "1 process (Go)"}


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=None, help="comma list of ceiling,pdp,cerbos")
    p.add_argument("--configs", default=None, help="gunicorn configs: sync,gthread")
    p.add_argument("--jwt", default=None, help="JWT modes: claims,same,distinct")
    p.add_argument("--pdp-audit", default=None,
                   help="pdp decision-log modes (PDP_AUDIT_MODE): off,async,durable "
                        "(default off,async; ignored by a pdp without a decision log)")
    p.add_argument("--database-url", default=None,
                   help="pdp's store (default: a SQLite file in the temporary directory); "
                        "the benchmark pushes its policy set and creates a key there")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8, help="threads per gthread worker")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--duration", type=float, default=None, help="seconds per measurement (10; wrk takes whole seconds)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every line this many times, interleaved; the table shows "
                        "each line's best round (for a shared machine)")
    p.add_argument("--tokens", type=int, default=None,
                   help="distinct tokens (150000: none sent twice at up to ~10,000 "
                        "requests/s for 3 + 10 s)")
    p.add_argument("--cerbos", default=None, help="path of the Cerbos binary")
    p.add_argument("--no-cerbos-audit", action="store_true", help="skip Cerbos with audit on")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: ceiling and pdp, gthread, distinct tokens, 2 s each")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    quick = args.quick
    args.servers = (args.servers or ("ceiling,pdp" if quick else ",".join(ALL_SERVERS))).split(",")
    args.configs = (args.configs or ("gthread" if quick else ",".join(ALL_CONFIGS))).split(",")
    args.jwt = (args.jwt or ("distinct" if quick else ",".join(ALL_JWT))).split(",")
    args.duration = args.duration if args.duration is not None else (2.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 3.0)
    args.tokens = args.tokens if args.tokens is not None else (5_000 if quick else 150_000)
    args.pdp_audit = (args.pdp_audit or ("async" if quick else "off,async")).split(",")
    for name, values, allowed in (("--servers", args.servers, ALL_SERVERS),
                                  ("--configs", args.configs, ALL_CONFIGS),
                                  ("--jwt", args.jwt, ALL_JWT),
                                  ("--pdp-audit", args.pdp_audit, ("off", "async", "durable"))):
        bad = [v for v in values if v not in allowed]
        if bad:
            p.error(f"{name}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    started = datetime.now(timezone.utc)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="pdp-http-bench-"))
    logs = work / "logs"
    logs.mkdir()
    lua = work / "bench.lua"
    lua.write_text(LUA)
    notes: list[str] = []
    rows: list[Row] = []
    cerbos_version = None
    all_rounds: list[dict] = []
    try:
        stack = PdpStack(work, args.database_url)
        pdp_audits: list[str | None] = (list(args.pdp_audit) if stack.has_decision_log()
                                        else [None])
        if pdp_audits == [None]:
            notes.append("pdp has no decision log yet: its rows are without audit.")
        log(f"work directory {work}; preparing pdp (store, policy set, key)")
        stack.prepare()
        log(f"minting {args.tokens:,} ES256 tokens")
        tokens = mint_tokens(stack.var, max(1, args.tokens))
        wl = Workload(work, tokens)
        files: dict[tuple[str, str], Path] = {}
        for mode in args.jwt:
            chosen = tokens if mode == "distinct" else tokens[:1]
            files[("pdp", mode)] = wl.file(f"pdp-{mode}", [pdp_body(mode, t) for t in chosen])
            files[("cerbos", mode)] = wl.file(f"cerbos-{mode}",
                                              [cerbos_body(mode, t) for t in chosen])
        # The ceiling parses the heaviest pdp body: a distinct token per request.
        files[("ceiling", "-")] = wl.file("ceiling", [pdp_body("distinct", t) for t in tokens])

        binary = find_cerbos(args.cerbos) if "cerbos" in args.servers else None
        cerbos = None
        if "cerbos" in args.servers and binary is None:
            notes.append("Cerbos skipped: no binary (see bench/README.md).")
            log(notes[-1])
        elif binary is not None:
            cerbos = CerbosServer(binary, work, stack.var / "dev-jwks.json")
            cerbos_version = cerbos.version()
        runs: dict[tuple, list[Row]] = {}

        def record(row: Row) -> None:
            runs.setdefault((row.server, row.config, row.jwt, row.audit), []).append(row)
            log(f"  {row.jwt}: {fmt_int(row.rps)} req/s, p50 {row.p50_ms:.2f} ms, "
                f"p99 {row.p99_ms:.2f} ms, {fmt_int(row.cpu_us or 0)} CPU µs/req "
                f"(split {row.cpu_split or '-'}; other threads "
                f"{fmt_int(row.other_threads_cpu_us or 0)} µs/req)")

        for round_no in range(1, args.rounds + 1):
            if args.rounds > 1:
                log(f"round {round_no} of {args.rounds}")
            for config in args.configs:
                label = CONFIG_LABEL[config].format(t=args.threads)
                servers = ([("ceiling", None)] if "ceiling" in args.servers else []) + (
                    [("pdp", a) for a in pdp_audits] if "pdp" in args.servers else [])
                for server, audit in servers:
                    port = free_port()
                    log(f"{server}, {label}"
                        + (f", audit {stack.audit_label(audit)}" if server == "pdp" else "")
                        + f": starting gunicorn on port {port}")
                    proc = stack.start(server, config, args.workers, args.threads, port,
                                       logs / f"{server}-{config}-{audit}.log", audit)
                    try:
                        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
                        if server == "ceiling":
                            t = Target("ceiling (Flask)", label, "(token body)", "—",
                                       url=f"http://127.0.0.1:{port}/echo")
                            record(measure(t, files[("ceiling", "-")], lua, args, proc.pid))
                            continue
                        url = f"http://127.0.0.1:{port}/v1/decide"
                        for mode in args.jwt:
                            body_file = files[("pdp", mode)]
                            check_pdp(url, stack.key, body_file.read_text().split("\n", 1)[0])
                            t = Target("pdp", label, mode, stack.audit_label(audit), url=url,
                                       headers={"Authorization": f"Bearer {stack.key}"})
                            record(measure(t, body_file, lua, args, proc.pid))
                    finally:
                        stop(proc)

            if cerbos is not None:
                for audit in ([False] if args.no_cerbos_audit else [False, True]):
                    port = free_port()
                    log(f"Cerbos, audit {'on' if audit else 'off'}: port {port}")
                    proc = cerbos.start(audit, port, logs / f"cerbos-{audit}.log")
                    try:
                        wait_ready(f"http://127.0.0.1:{port}/_cerbos/health", proc)
                        url = f"http://127.0.0.1:{port}/api/check/resources"
                        for mode in args.jwt:
                            body_file = files[("cerbos", mode)]
                            check_cerbos(url, body_file.read_text().split("\n", 1)[0])
                            t = Target("Cerbos", CONFIG_LABEL["go"], mode,
                                       "file" if audit else "off", url=url)
                            record(measure(t, body_file, lua, args, proc.pid))
                    finally:
                        stop(proc)

        # Each line's best round (highest requests/s, with that round's latencies):
        # on a shared machine the least disturbed round is the closest to the stack's
        # own figure. Every round is in the JSON output.
        for key, measured in runs.items():
            best = max(measured, key=lambda r: r.rps)
            for r in measured:
                if r.note:
                    notes.append(f"{r.server}, {r.config}, {r.jwt}, audit {r.audit}: {r.note}")
            best.note = "; ".join(filter(None, [
                f"best of {len(measured)}" if len(measured) > 1 else "", best.note]))
            rows.append(best)
        all_rounds = [asdict(r) for measured in runs.values() for r in measured]
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    ceilings = {r.config: r.rps for r in rows if r.server.startswith("ceiling")}
    for r in rows:
        if r.server == "pdp" and r.config in ceilings:
            r.ratio = r.rps / ceilings[r.config]

    print()
    print(f"POST /v1/decide, {args.connections} connections, wrk {args.wrk_threads} threads, "
          f"{args.duration:g} s each after {args.warmup:g} s warm-up"
          + (f", best of {args.rounds} interleaved rounds" if args.rounds > 1 else "") + "; "
          f"{args.tokens:,} distinct tokens; {started:%Y-%m-%d %H:%M} UTC")
    print(f"machine: nproc {info['nproc']}, {info['cpu']}, Python {info['python']}, "
          f"{info['wrk']}" + (f", {cerbos_version}" if cerbos_version else "")
          + (f", load {info['load_1min_at_start']:.2f} at start"
             if info['load_1min_at_start'] is not None else ""))
    print()
    print(render(rows))
    for note in notes:
        print(f"\n{note}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": started.isoformat(), "machine": info, "cerbos": cerbos_version,
            "options": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "rows": [asdict(r) for r in rows], "rounds": all_rounds, "notes": notes},
            indent=2))
    failed = [r for r in rows if r.requests == 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
