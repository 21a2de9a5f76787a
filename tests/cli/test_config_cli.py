"""``pdp --config PATH`` and ``pdp config show``: the effective settings with their
source, secrets masked; config errors on stderr with exit status 1."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from pdp.cli import main

SECRET = "cli-hmac-secret-that-must-never-be-printed"
PASSWORD = "cli-Pa55word-never-printed"


@pytest.fixture(autouse=True)
def _no_config_leaks(monkeypatch):
    """``--config`` sets PDP_CONFIG in this process: undone after each test."""
    monkeypatch.setenv("PDP_CONFIG", "")


@pytest.fixture
def toml(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "pdp.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)
    return write


def run(*args: str, env: dict[str, str] | None = None, expect: int = 0):
    clean = {k: None for k in os.environ if k.startswith("PDP_") and k != "PDP_CONFIG"}
    result = CliRunner().invoke(main, list(args), env={**clean, **(env or {})})
    assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
    return result


def shown(result) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in result.stdout.splitlines():
        if line.startswith("PDP_"):
            name, rest = line.split(None, 1)
            value, source = rest.rsplit(None, 1)
            rows[name] = (value.strip(), source)
    return rows


def test_show_gives_each_value_and_its_source(toml):
    path = toml('workers = 3\nthreads = 6\naudit_mode = "durable"\n'
                'jwt_issuer = ["https://a", "https://b"]\n')
    result = run("--config", path, "config", "show", env={"PDP_THREADS": "9"})
    assert result.stdout.splitlines()[0] == f"# PDP_CONFIG: {path}"
    rows = shown(result)
    assert rows["PDP_WORKERS"] == ("3", "file")
    assert rows["PDP_THREADS"] == ("9", "env")
    assert rows["PDP_AUDIT_MODE"] == ("durable", "file")
    assert rows["PDP_JWT_ISSUER"] == ("https://a,https://b", "file")
    assert rows["PDP_BIND"] == ("127.0.0.1:8080", "default")
    assert rows["PDP_POLL_INTERVAL"] == ("1", "default")


def test_show_without_a_file_and_as_json():
    result = run("config", "show", "--json", env={"PDP_WORKERS": "4"})
    data = json.loads(result.stdout)
    assert data["config_file"] is None
    assert data["settings"]["PDP_WORKERS"] == {"value": "4", "source": "env"}
    assert data["settings"]["PDP_DATABASE_URL"]["source"] == "default"


def test_show_masks_every_secret(toml):
    path = toml(f'database_url = "postgresql+psycopg://pdp:{PASSWORD}@db:5432/pdp"\n'
                f'jwt_hs_secret = "{SECRET}"\n')
    result = run("--config", path, "config", "show",
                 env={"PDP_JWKS": f"https://svc:{PASSWORD}@idp.test/jwks,keys/a.json"})
    rows = shown(result)
    assert rows["PDP_DATABASE_URL"] == ("postgresql+psycopg://pdp:***@db:5432/pdp", "file")
    assert rows["PDP_JWT_HS_SECRET"] == ("***", "file")
    assert rows["PDP_JWKS"] == ("https://svc:***@idp.test/jwks,keys/a.json", "env")
    json_output = run("--config", path, "config", "show", "--json").stdout
    for output in (result.stdout, json_output):
        assert SECRET not in output and PASSWORD not in output


def test_the_environment_secret_is_masked_too():
    rows = shown(run("config", "show", env={"PDP_JWT_HS_SECRET": SECRET}))
    assert rows["PDP_JWT_HS_SECRET"] == ("***", "env")


@pytest.mark.parametrize("text, expected", [
    ("workers = 2\nworkrs = 3\n", "line 2: unknown key workrs; did you mean workers?"),
    ('workers = "3"\n', "line 1: workers must be a whole number"),
    ("workers = = 3\n", "is not valid TOML: Invalid value (at line 1, column 11)"),
    ("workers = -3\n", "PDP_WORKERS must be positive, not '-3' (set as workers in config file"),
    (f'jwt_hs_secret = "{SECRET}\n', "is not valid TOML"),
])
def test_config_errors_go_to_stderr_with_status_1(toml, text, expected):
    path = toml(text)
    result = run("--config", path, "config", "show", expect=1)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert path in result.stderr and SECRET not in result.stderr


def test_a_missing_file_named_by_the_environment(tmp_path):
    missing = str(tmp_path / "missing.toml")
    result = run("config", "show", env={"PDP_CONFIG": missing}, expect=1)
    assert f"config file {missing} (PDP_CONFIG) cannot be read" in result.stderr


def test_config_is_made_absolute_for_the_commands_and_workers(tmp_path, monkeypatch, toml):
    toml("workers = 5\n")
    monkeypatch.chdir(tmp_path)
    result = run("--config", "pdp.toml", "config", "show")
    assert result.stdout.splitlines()[0] == f"# PDP_CONFIG: {tmp_path / 'pdp.toml'}"
    assert os.environ["PDP_CONFIG"] == str(tmp_path / "pdp.toml")
    assert shown(result)["PDP_WORKERS"] == ("5", "file")


def test_store_commands_use_the_file(tmp_path, toml):
    path = toml(f'database_url = "sqlite:///{tmp_path / "from-file.db"}"\n')
    run("--config", path, "db", "upgrade")
    assert (tmp_path / "from-file.db").exists()


def test_token_mint_takes_the_issuer_from_the_file(toml, tmp_path):
    import jwt

    path = toml('jwt_issuer = ["https://idp.test"]\njwt_audience = "pdp"\n')
    result = run("--config", path, "token", "mint", "--sub", "alice", "--dev",
                 "--var-dir", str(tmp_path / "var"))
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://idp.test", "pdp")


def test_gunicorn_reads_the_file_given_to_pdp(tmp_path):
    """The config module gunicorn loads (pdp serve, or gunicorn directly) sees it."""
    import subprocess
    import sys

    (tmp_path / "pdp.toml").write_text("workers = 3\nthreads = 5\nlog_level = \"WARNING\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    done = subprocess.run(
        [sys.executable, "-c", "import pdp.api.gunicorn_conf as g; "
                               "print(g.workers, g.threads, g.loglevel)"],
        env={**env, "PDP_CONFIG": str(tmp_path / "pdp.toml")}, capture_output=True,
        text=True, timeout=60)
    assert done.stdout.split() == ["3", "5", "warning"], done.stderr
