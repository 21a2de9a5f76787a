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
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jwt", default="claims,same,distinct")
    p.add_argument("--audit", default="off,async")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    p.add_argument("--tokens", type=int, default=20_000,
                   help="ES256 tokens minted (distinct: fresh ones each pass while they last)")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--profile", type=int, default=0, metavar="N")
    p.add_argument("--callers", default=None)
    args = p.parse_args(argv)
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
