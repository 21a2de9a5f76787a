"""A real pdp service for tests: ``pdp serve`` (gunicorn) in a subprocess.

    with live_server({"PDP_JWT_HS_SECRET": "…"}, database_url=url) as base_url:
        requests to f"{base_url}/healthz"

The server listens on a free 127.0.0.1 port, runs in a temporary working
directory (so ``var/`` is private to it), gets a private metrics directory, and is
stopped with SIGTERM (then SIGKILL after ``stop_timeout``). The yielded value is the
base URL (a ``str``) with a few attributes for tests that need more:
``.process`` (the ``Popen``), ``.workdir`` (its working directory), ``.log_path``
(its stdout and stderr, JSON log lines) and ``.logs()`` (that file's text so far),
and ``.exit_code`` (set once it has stopped).

The ``live_server`` fixture (``tests/conftest.py``) starts servers on the test's
``database_url`` and stops them after the test.

Also here: :class:`BackgroundHTTPServer`, a small in-process HTTP server for the
other side of a test (an upstream behind a gateway, a page on another origin), and
:func:`http_request`, one raw HTTP request as a gateway's client sends it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: Started this way rather than through the ``pdp`` script, so that the test's own
#: interpreter (and its installed pdp) serves.
PDP = [sys.executable, "-c", "import sys; from pdp.cli import main; "
                             "sys.exit(main(prog_name='pdp'))"]


class LiveServer(str):
    """The base URL of a running server, with its process and logs."""

    process: subprocess.Popen
    workdir: Path
    log_path: Path
    exit_code: int | None = None

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict]:
        """The log lines that are JSON objects, parsed."""
        records = []
        for line in self.logs().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        return records


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, *, headers: Mapping[str, str] | None = None,
        timeout: float = 5.0) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_json(url: str, body: object, *, headers: Mapping[str, str] | None = None,
              timeout: float = 5.0) -> tuple[int, dict]:
    """``(status, parsed JSON body)`` of a JSON POST."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", **dict(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"raw": raw.decode("utf-8", "replace")}


@contextlib.contextmanager
def live_server(env: Mapping[str, str] | None = None, *, database_url: str, workers: int = 2,
                threads: int = 4, args: Sequence[str] = (), workdir: str | os.PathLike | None = None,
                start_timeout: float = 30.0, stop_timeout: float = 15.0) -> Iterator[LiveServer]:
    """Run ``pdp serve`` until the block ends; yields its base URL (see module doc).

    ``env`` is added to this process's environment (``PROMETHEUS_MULTIPROC_DIR`` and
    ``PDP_*`` variables of the test process are not inherited: only what ``env``
    says, plus ``PDP_DATABASE_URL=database_url``); ``args`` are more ``pdp serve``
    options (``--dev``). ``workdir`` defaults to a new temporary directory.
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pdp-live-"))
        workdir = Path(workdir)
        port = free_port()
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("PDP_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        full_env = {**base, "PDP_DATABASE_URL": database_url, "PDP_LOG_LEVEL": "INFO",
                    **dict(env or {})}
        log_path = workdir / "server.log"
        log_file = stack.enter_context(open(log_path, "wb"))
        command = [*PDP, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                   "--threads", str(threads), *args]
        process = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        server = LiveServer(f"http://127.0.0.1:{port}")
        server.process, server.workdir, server.log_path = process, workdir, log_path
        try:
            _wait_until_healthy(server, start_timeout)
            yield server
        finally:
            server.exit_code = stop(process, stop_timeout)


def _wait_until_healthy(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"pdp serve exited with status {server.process.returncode} "
                               f"before answering /healthz:\n{server.logs()}")
        try:
            status, _ = get(f"{server}/healthz", timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"pdp serve did not answer /healthz within {timeout} s:\n"
                               f"{server.logs()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM (graceful), then SIGKILL to the whole process group after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    return process.returncode


class BackgroundHTTPServer:
    """``handler`` served on a free 127.0.0.1 port from a daemon thread while the
    ``with`` block runs (``.port``, ``.url``)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def http_request(port: int, method: str, path: str, headers: dict | None = None,
                 body: bytes | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to 127.0.0.1:``port`` exactly as given (no added
    ``Accept-Encoding``): ``(status, header pairs, body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()
