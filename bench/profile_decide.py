#!/usr/bin/env python3
"""CPU per ``POST /v1/decide`` in process: the WSGI app that ``pdp serve`` builds,
called directly (no sockets, no gunicorn), timed with ``time.process_time()`` —
the CPU of every thread of the process, the decision log's writer included — so
the figure is robust to other load on the machine. The ceiling app
(bench/ceiling_app.py) is measured the same way for comparison.

    .venv/bin/python bench/profile_decide.py                      # all modes, audit off and async
    .venv/bin/python bench/profile_decide.py --jwt distinct --audit async --profile 20
    .venv/bin/python bench/profile_decide.py --requests 20000 --repeat 5

``--profile N`` prints cProfile's N most expensive functions (cumulative) for
each line; ``--callers NAME`` restricts it to who calls ``NAME``.

``--instructions`` counts instructions per request instead of timing them —
repeatable to within 0.7 % whatever the load on the machine, so it shows changes
of a few per cent that the CPU timings (±20 % here) hide. Each line runs in a
child ``valgrind --tool=callgrind --instr-atstart=no`` process that builds the
app, makes ``--warmup`` (50; at least 2.5 s of) uncounted requests, then as many
as it counts (so that the decision log's statements for a batch of that size are
compiled before counting), turns instrumentation on with
``callgrind_control -i on <pid>``, makes ``--requests`` (300) requests (the
decision log's ``flush()`` included; fresh tokens in ``distinct``), turns it
off, and exits; the table gives callgrind's total Ir (all threads) divided by
``--requests``. ``--keep`` keeps the callgrind out files.

    .venv/bin/python bench/profile_decide.py --instructions            # all 7 lines, ~2.5 minutes
    .venv/bin/python bench/profile_decide.py --instructions --jwt same --audit off --no-ceiling
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(_HERE)
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
ISSUER = "https://idp.bench.example"
AUDIENCE = "pdp-bench"
SUBJECT = {"sub": "alice", "roles": ["viewer"], "department": "engineering"}
RESOURCE = {"type": "document", "id": "d-42",
            "attributes": {"owner": "bob", "classification": "confidential",
                           "department": "engineering"}}
CONTEXT = {"ip": "10.1.2.3"}


def body(mode: str, token: str | None) -> bytes:
    subject = {"claims": SUBJECT} if mode == "claims" else {"token": token}
    return json.dumps({"subject": subject, "action": "read", "resource": RESOURCE,
                       "context": CONTEXT}, separators=(",", ":")).encode()


def environ(path: str, raw: bytes, key: str | None) -> dict:
    env = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path,
           "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
           "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(raw)),
           "HTTP_HOST": "127.0.0.1:8080", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
           "wsgi.input": io.BytesIO(raw), "wsgi.errors": sys.stderr,
           "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
    if key:
        env["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return env


def call(app, env: dict) -> tuple[str, bytes]:
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    out = app(env, start_response)
    try:
        data = b"".join(out)
    finally:
        close = getattr(out, "close", None)
        if close:
            close()
    return status[0], data


def prepare(work: Path, count: int = 20_000) -> tuple[dict, str, list[str]]:
    var = work / "var"
    var.mkdir(parents=True)
    env = {**os.environ, "PDP_DATABASE_URL": f"sqlite:///{work / 'pdp.db'}",
           "PDP_DEV_MODE": "1", "PDP_JWKS": str(var / "dev-jwks.json"),
           "PDP_JWT_ISSUER": ISSUER, "PDP_JWT_AUDIENCE": AUDIENCE, "PDP_LOG_LEVEL": "INFO",
           "PDP_AUDIT_SPILL_DIR": str(var / "spill")}
    for name in ("PDP_JWT_HS_SECRET", "PDP_AUDIT_MODE", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)

    def pdp(*args: str) -> str:
        proc = subprocess.run([str(VENV_BIN / "pdp"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"pdp {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    import jwt

    from pdp.api.tokens import DEV_ALGORITHM, dev_signing_key

    key = dev_signing_key(var)
    pdp("db", "upgrade")
    pdp("policy", "push", str(HERE / "decide_policies" / "pdp"), "--activate")
    api_key = pdp("keys", "create", "--name", "bench", "--role", "decide",
                  "--trusted-claims").strip().splitlines()[-1]
    signer = key.pyjwk()
    now = int(time.time())
    tokens = [jwt.encode({**SUBJECT, "iss": ISSUER, "aud": AUDIENCE, "iat": now,
                          "exp": now + 4 * 3600, "jti": uuid.uuid4().hex}, signer,
                         algorithm=DEV_ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})
              for _ in range(count)]
    return env, api_key, tokens


def measure(app, bodies: list[bytes], path: str, key: str | None, n: int, flush) -> float:
    """CPU µs per request over ``n`` requests (the writer's flush included)."""
    envs = [environ(path, bodies[i % len(bodies)], key) for i in range(n)]
    started = time.process_time()
    for env in envs:
        status, _ = call(app, env)
    flush()
    return (time.process_time() - started) * 1e6 / n, status


# --------------------------------------------------------------------------- --instructions

#: Uncounted requests the child makes before counting (lazy imports, caches).
WARMUP = 50
#: ... and for at least this long, so that code run once a second (the check of
#: the key file for changes) has run before counting, not first inside it.
WARMUP_SECONDS = 2.5
#: Set in the child so that no timer fires inside the counted region: under
#: callgrind a request is many times slower, so pdp's 1 s policy poll and the writer's
#: 200 ms batching would run a number of times that depends on the machine's
#: speed. With these the writer commits the counted records in the region's
#: final ``flush()`` (one batch of up to PDP_AUDIT_BATCH_SIZE, 500).
QUIET_TIMERS = {"PDP_POLL_INTERVAL": "3600", "PDP_AUDIT_FLUSH_INTERVAL": "3600000"}


def callgrind_toggle(state: str) -> None:
    """Turn callgrind's instrumentation of this process ``on`` or ``off``.

    ``callgrind_control`` is a separate (uninstrumented) process that reaches
    this one through valgrind's gdbserver; the call returns once the command
    is applied, so nothing of it but our side of ``subprocess.run`` is counted.
    """
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def callgrind_child(spec_path: Path) -> int:
    """The child of ``--instructions``, run under ``valgrind --tool=callgrind
    --instr-atstart=no``: build one line's app, warm it up, then count
    ``requests`` requests (and, with a decision log, the writer's flush)."""
    spec = json.loads(spec_path.read_text())
    os.environ.clear()
    os.environ.update(spec["env"])
    os.chdir(spec["work"])
    sys.path.insert(0, str(ROOT))
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")       # pdp's JSON log lines: written, not shown
    mode, n, warmup = spec["mode"], spec["requests"], spec["warmup"]
    tokens = spec["tokens"]
    writer = None
    if spec["app"] == "ceiling":
        sys.path.append(str(HERE))           # last: bench/http.py must not shadow http
        from ceiling_app import app

        path, key = "/echo", None
    else:
        from pdp.api import create_app
        from pdp.config import Settings

        os.environ["PDP_AUDIT_MODE"] = spec["audit"]
        app = create_app(Settings.from_env())
        path, key = "/v1/decide", spec["api_key"]
        writer = app.extensions.get("pdp.audit")
        if writer is not None:
            writer.orphan_interval = 3600.0  # no spill-directory scan in the region
    flush = (lambda: writer.flush(600)) if writer is not None else (lambda: None)
    if mode == "distinct":                    # fresh tokens: a seen one is a cache hit
        bodies = [body(mode, t) for t in tokens[:warmup + n]]
    else:
        bodies = [body(mode, tokens[0])] * (warmup + n)
    warm = [environ(path, raw, key) for raw in bodies[:warmup]]
    counted = [environ(path, raw, key) for raw in bodies[warmup:]]
    started = time.monotonic()
    statuses = [call(app, env)[0] for env in warm]
    while time.monotonic() - started < WARMUP_SECONDS:
        statuses.append(call(app, environ(path, bodies[0], key))[0])
    flush()
    # as many records as the counted region writes, in one batch: the statements for
    # that batch size (compiled once per size, then cached) are compiled here
    statuses += [call(app, environ(path, bodies[0], key))[0] for _ in range(n)]
    flush()
    gc.collect()                              # every run counts from empty young generations
    callgrind_toggle("on")
    for env in counted:
        status, _ = call(app, env)
    flush()
    callgrind_toggle("off")
    statuses.append(status)
    if writer is not None:
        writer.close(10)
    if spec["app"] != "ceiling":
        app.extensions["pdp"].active.stop(2.0)
    sys.stdout = real_stdout
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        print(f"{spec['app']} {mode}/{spec['audit']}: {bad[0]}", file=sys.stderr)
        return 1
    return 0


def callgrind_total(path: Path) -> int:
    """The ``totals:`` (else ``summary:``) Ir of a callgrind out file."""
    found = {}
    for line in path.read_text().splitlines():
        for name in ("totals:", "summary:"):
            if line.startswith(name):
                found[name] = int(line.split()[1])
    total = found.get("totals:") or found.get("summary:")
    if total is None:
        raise RuntimeError(f"no totals in {path}")
    return total


def count_instructions(args) -> int:
    """``--instructions``: one callgrind child per line, instructions per request."""
    lines = [] if args.no_ceiling else [("ceiling", "-", "-")]
    lines += [("pdp", mode, audit) for audit in args.audit.split(",")
              for mode in args.jwt.split(",")]
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True,
                              text=True, check=True).stdout.strip()
    print(f"command: {os.path.relpath(sys.executable)} {' '.join(sys.argv)}")
    print(f"python: {sys.version.split()[0]}; valgrind: {valgrind}; "
          f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    work = Path(tempfile.mkdtemp(prefix="pdp-instructions-"))
    try:
        sys.path.insert(0, str(ROOT))
        env, api_key, tokens = prepare(work, args.warmup + args.requests)
        env = {**env, **QUIET_TIMERS, "PYTHONHASHSEED": "0"}
        per_request: dict[tuple, float] = {}
        per_thread: dict[tuple, tuple[float, float]] = {}
        for app_name, mode, audit in lines:
            name = "ceiling" if app_name == "ceiling" else f"pdp_{mode}_{audit}"
            spec = work / f"{name}.json"
            spec.write_text(json.dumps({"env": env, "work": str(work), "app": app_name,
                                        "mode": "distinct" if app_name == "ceiling" else mode,
                                        "audit": audit, "api_key": api_key, "tokens": tokens,
                                        "requests": args.requests, "warmup": args.warmup}))
            out = work / f"callgrind.{name}.out"
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--separate-threads={'yes' if args.by_thread else 'no'}",
                   f"--callgrind-out-file={out}", sys.executable, str(HERE / "profile_decide.py"),
                   "--callgrind-child", str(spec)]
            started = time.monotonic()
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
            if args.by_thread:     # out-01 is the main (request) thread; the rest others
                parts = sorted(work.glob(f"{out.name}-*"))
                totals = [callgrind_total(part) for part in parts]
                per_request[(app_name, mode, audit)] = sum(totals) / args.requests
                per_thread[(app_name, mode, audit)] = (totals[0] / args.requests,
                                                       sum(totals[1:]) / args.requests)
            else:
                per_request[(app_name, mode, audit)] = callgrind_total(out) / args.requests
            print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        print(f"\nInstructions (callgrind Ir, all threads) per request, "
              f"{args.requests:,} counted after {args.warmup} warm-up")
        base = per_request.get(("ceiling", "-", "-"))
        threads = " request thread (k) | other threads (k) |" if args.by_thread else ""
        print(f"| app | JWT | audit | instructions/request (k) | ceiling / this |{threads}")
        print("|---|---|---|--:|--:|" + ("--:|--:|" if args.by_thread else ""))
        for (app_name, mode, audit), ir in per_request.items():
            ratio = f"{100 * base / ir:.1f} %" if base else "—"
            line = f"| {app_name} | {mode} | {audit} | {ir / 1000:,.1f} | {ratio} |"
            if args.by_thread:
                main_ir, other_ir = per_thread[(app_name, mode, audit)]
                line += f" {main_ir / 1000:,.1f} | {other_ir / 1000:,.1f} |"
            print(line)
        if args.keep:
            print(f"\nkept: {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jwt", default="claims,same,distinct")
    p.add_argument("--audit", default="off,async")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per pass (default 5000; 300 with --instructions)")
    p.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    p.add_argument("--tokens", type=int, default=20_000,
                   help="ES256 tokens minted (distinct: fresh ones each pass while they last)")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--profile", type=int, default=0, metavar="N")
    p.add_argument("--callers", default=None)
    p.add_argument("--instructions", action="store_true",
                   help="count instructions per request with valgrind's callgrind instead")
    p.add_argument("--warmup", type=int, default=WARMUP,
                   help="--instructions: uncounted requests before the counted ones")
    p.add_argument("--keep", action="store_true",
                   help="--instructions: keep the temporary directory (callgrind out files)")
    p.add_argument("--by-thread", action="store_true",
                   help="--instructions: also split each line into the request thread "
                        "and the other threads (the decision log's writer, the policy "
                        "watcher)")
    p.add_argument("--callgrind-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.callgrind_child:
        return callgrind_child(Path(args.callgrind_child))
    if args.requests is None:
        args.requests = 300 if args.instructions else 5000
    if args.instructions:
        return count_instructions(args)
    sys.path.insert(0, str(ROOT))

    work = Path(tempfile.mkdtemp(prefix="pdp-profile-"))
    real_stdout = sys.stdout
    try:
        env, api_key, tokens = prepare(work, max(1, args.tokens))
        os.environ.clear()
        os.environ.update(env)
        os.chdir(work)
        sys.stdout = open(os.devnull, "w")       # pdp's JSON log lines: written, not shown
        best: dict[tuple, float] = {}

        def keep(key, cpu):
            best[key] = min(cpu, best.get(key, cpu))

        ceiling = None
        if not args.no_ceiling:
            sys.path.insert(0, str(HERE))
            from ceiling_app import app as ceiling

            ceiling_body = [body("distinct", t) for t in tokens]
        from pdp.api import create_app
        from pdp.config import Settings

        apps = {}
        for audit in args.audit.split(","):
            os.environ["PDP_AUDIT_MODE"] = audit
            app = create_app(Settings.from_env())
            writer = app.extensions.get("pdp.audit")
            flush = (lambda w=writer: w.flush(30)) if writer is not None else (lambda: None)
            apps[audit] = (app, flush)
            for mode in args.jwt.split(","):
                chosen = tokens if mode == "distinct" else tokens[:1]
                call(app, environ("/v1/decide", body(mode, chosen[-1]), api_key))   # warm
        # Interleaved passes (ceiling, then every pdp line), best of --repeat: the
        # lines see the same disturbance from other load on the machine.
        used = 0
        for _ in range(args.repeat):
            if ceiling is not None:
                keep(("ceiling", "-", "-"), measure(ceiling, ceiling_body, "/echo", None,
                                                    args.requests, lambda: None)[0])
            for audit, (app, flush) in apps.items():
                for mode in args.jwt.split(","):
                    if mode == "distinct":       # fresh tokens: a seen one is a cache hit
                        k = args.requests
                        bodies = [body(mode, t) for t in (tokens[used:] + tokens)[:k]]
                        used = (used + k) % len(tokens)
                    else:
                        bodies = [body(mode, tokens[0])]
                    cpu, status = measure(app, bodies, "/v1/decide", api_key, args.requests,
                                          flush)
                    if not status.startswith("200"):
                        raise RuntimeError(f"{mode}/{audit}: {status}")
                    keep(("pdp", mode, audit), cpu)
        for audit, (app, flush) in apps.items():
            for mode in args.jwt.split(","):
                if args.profile:
                    import cProfile
                    import pstats

                    chosen = tokens[-args.requests:] if mode == "distinct" else tokens[:1]
                    bodies = [body(mode, t) for t in chosen]
                    envs = [environ("/v1/decide", bodies[i % len(bodies)], api_key)
                            for i in range(args.requests)]
                    prof = cProfile.Profile()
                    prof.enable()
                    for e in envs:
                        call(app, e)
                    flush()
                    prof.disable()
                    out = io.StringIO()
                    stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
                    if args.callers:
                        stats.print_callers(args.callers)
                    else:
                        stats.print_stats(args.profile)
                    print(f"==== profile pdp {mode} audit {audit}\n{out.getvalue()}",
                          file=real_stdout)
            writer = app.extensions.get("pdp.audit")
            if writer is not None:
                writer.close(10)
            app.extensions["pdp"].active.stop(2.0)
        results = [(*key, cpu) for key, cpu in best.items()]
        sys.stdout = real_stdout
        print(f"CPU µs per request, in process, best of {args.repeat} × {args.requests:,}")
        base = best.get(("ceiling", "-", "-"))
        print("| app | JWT | audit | CPU µs/req | ceiling / this |")
        print("|---|---|---|--:|--:|")
        for app_name, mode, audit, cpu in results:
            ratio = f"{100 * base / cpu:.0f} %" if base else "—"
            print(f"| {app_name} | {mode} | {audit} | {cpu:.0f} | {ratio} |")
    finally:
        sys.stdout = real_stdout
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
