"""The Dockerfile, read: the base image, a non-root user, what it copies, how it
starts and how it is probed. CI has no Docker engine; scripts/docker-smoke.sh
builds the image and runs it (docs/operations.md, "Docker")."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()
                                          if not line.lstrip().startswith("#")))
    result = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def last(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def test_the_base_image_is_python_3_11_slim_unless_the_builder_names_another():
    (arg, args), (word, base) = instructions()[:2]
    assert (arg, args) == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert (word, base) == ("FROM", "${BASE_IMAGE}")


def test_it_runs_as_a_non_root_user():
    user = last("USER").split(":")[0]
    assert user not in ("root", "0", "")
    users = [i for i, (word, _) in enumerate(instructions()) if word == "USER"]
    later = [word for word, _ in instructions()[users[-1]:]]
    assert "RUN" not in later, "nothing runs as root after USER"


def test_it_starts_pdp_serve_which_migrates_then_runs_gunicorn():
    assert exec_form(last("CMD")) == ["pdp", "serve"]
    assert "ENTRYPOINT" not in {word for word, _ in instructions()}
    env = " ".join(args for word, args in instructions() if word == "ENV")
    assert "PDP_BIND=0.0.0.0:8080" in env
    assert last("EXPOSE") == "8080"
    assert last("STOPSIGNAL") == "SIGTERM"


def test_the_healthcheck_probes_healthz():
    check = last("HEALTHCHECK")
    options, _, command = check.partition("CMD")
    assert "--interval" in options and "--timeout" in options
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")


def test_it_copies_what_exists_including_the_migrations_and_installs_in_place():
    copied = []
    for word, args in instructions():
        if word == "COPY":
            *sources, _target = shlex.split(args)
            copied += [s for s in sources if not s.startswith("--")]
    for source in copied:
        assert (ROOT / source).exists(), source
    assert {"pyproject.toml", "pdp", "migrations"} <= set(copied)
    install = " ".join(args for word, args in instructions() if word == "RUN")
    # migrations/ is found next to the package: an in-place (editable) install.
    assert "pip install" in install and " -e ." in install
    assert "gunicorn" in install and "prometheus_client" in install


@pytest.mark.parametrize("ignored", [".venv", "var", ".git"])
def test_the_build_context_leaves_out_local_state(ignored):
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignored in lines
    assert "pdp" not in lines and "migrations" not in lines
