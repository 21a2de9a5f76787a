"""Settings come from the environment once, with checked values and defaults."""

from __future__ import annotations

import dataclasses

import pytest

from pdp.config import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///var/pdp.db"
    assert settings.poll_interval is None and settings.effective_poll_interval == 1.0
    assert settings.max_data_bytes == 16 * 1024 * 1024


def test_values_from_the_environment():
    settings = Settings.from_env({"PDP_DATABASE_URL": "postgresql+psycopg://u@h/db",
                                  "PDP_POLL_INTERVAL": "0.5", "PDP_MAX_DATA_BYTES": "2048"})
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.poll_interval == 0.5 and settings.max_data_bytes == 2048


def test_the_spill_directory_has_no_limit_but_the_disk_unless_one_is_set():
    assert Settings.from_env({}).audit_spill_max_mb is None
    assert Settings.from_env({"PDP_AUDIT_SPILL_MAX_MB": "512"}).audit_spill_max_mb == 512


def test_the_poll_interval_defaults_to_5s_on_postgresql():
    settings = Settings.from_env({"PDP_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert settings.effective_poll_interval == 5.0


def test_empty_values_mean_the_default():
    assert Settings.from_env({"PDP_DATABASE_URL": " ", "PDP_POLL_INTERVAL": ""}) == Settings()


@pytest.mark.parametrize("name, value", [
    ("PDP_POLL_INTERVAL", "soon"), ("PDP_POLL_INTERVAL", "0"), ("PDP_POLL_INTERVAL", "-1"),
    ("PDP_POLL_INTERVAL", "nan"), ("PDP_POLL_INTERVAL", "inf"),
    ("PDP_MAX_DATA_BYTES", "1.5"), ("PDP_MAX_DATA_BYTES", "0"),
    ("PDP_AUDIT_SPILL_MAX_MB", "0"), ("PDP_AUDIT_SPILL_MAX_MB", "1GB"),
])
def test_bad_values_are_refused_with_the_variable_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().database_url = "x"


# --------------------------------------------------------------------------- the file

import re  # noqa: E402
from pathlib import Path  # noqa: E402

from pdp.api.tokens import TokenSettings, TokenVerifier  # noqa: E402
from pdp.config import VARIABLES, load_environment, mask  # noqa: E402

SECRET = "file-hmac-secret-that-must-never-be-printed"
PASSWORD = "db-Pa55word-never-printed"


def config_file(tmp_path: Path, text: str, name: str = "pdp.toml") -> dict[str, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return {"PDP_CONFIG": str(path)}


def test_settings_from_the_file_only(tmp_path):
    env = config_file(tmp_path, """\
database_url = "postgresql+psycopg://pdp@db/pdp"
poll_interval = 2.5
workers = 3
gateway_subject_headers = true
audit_mode = "durable"
audit_redact_claims = ["email", "phone"]
jwt_issuer = "https://a.example, https://b.example"
jwt_audience = ["pdp"]
jwt_leeway = 10
jwks_max_bytes = 1024
""")
    settings = Settings.from_env(env)
    assert settings.database_url == "postgresql+psycopg://pdp@db/pdp"
    assert settings.poll_interval == 2.5 and settings.workers == 3
    assert settings.gateway_subject_headers is True and settings.audit_mode == "durable"
    assert settings.audit_redact_claims == ("email", "phone")
    tokens = TokenSettings.from_env(env)
    assert tokens.issuer == ("https://a.example", "https://b.example")
    assert tokens.audience == ("pdp",) and tokens.leeway == 10.0
    assert tokens.jwks_max_bytes == 1024


def test_the_environment_overrides_the_file_and_empty_means_unset(tmp_path):
    env = config_file(tmp_path, 'workers = 3\nthreads = 7\njwt_issuer = ["file"]\n')
    env.update(PDP_WORKERS="5", PDP_THREADS=" ", PDP_JWT_ISSUER="env")
    settings = Settings.from_env(env)
    assert settings.workers == 5 and settings.threads == 7
    assert TokenSettings.from_env(env).issuer == ("env",)
    merged = load_environment(env)
    assert merged.source("PDP_WORKERS") == "env"
    assert merged.source("PDP_THREADS") == "file"
    assert merged.source("PDP_BIND") == "default"


def test_every_variable_may_be_set_in_the_file_under_its_own_name():
    assert {v.key for v in VARIABLES} == {v.name[4:].lower() for v in VARIABLES}
    assert "PDP_DEV_MODE" not in {v.name for v in VARIABLES}


def test_the_documented_example_file_loads(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    blocks = re.findall(r"^```toml\n(.*?)^```", doc, re.M | re.S)
    assert len(blocks) == 1
    env = config_file(tmp_path, blocks[0])
    assert Settings.from_env(env).audit_mode == "durable"
    assert TokenSettings.from_env(env).audience == ("pdp",)


def test_an_unknown_key_names_the_key_the_file_and_the_line_with_a_did_you_mean(tmp_path):
    env = config_file(tmp_path, '# pdp\nworkers = 2\njwt_isuer = "x"\n')
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    message = str(err.value)
    assert "unknown key jwt_isuer" in message and env["PDP_CONFIG"] in message
    assert "line 3" in message and "did you mean jwt_issuer?" in message


@pytest.mark.parametrize("text, hint", [
    ('PDP_WORKERS = 2\n', "did you mean workers?"),
    ('[jwt]\nissuer = "x"\n', "the file is flat"),
    ('dev_mode = true\n', "PDP_DEV_MODE=1"),
])
def test_unknown_keys_explain_themselves(tmp_path, text, hint):
    with pytest.raises(ConfigError, match=re.escape(hint)):
        load_environment(config_file(tmp_path, text))


@pytest.mark.parametrize("text, key", [
    ('workers = "4"\n', "workers"),
    ('workers = 2.0\n', "workers"),
    ('poll_interval = "soon"\n', "poll_interval"),
    ('gateway_subject_headers = 1\n', "gateway_subject_headers"),
    ('database_url = 5\n', "database_url"),
    ('jwt_issuer = [1, 2]\n', "jwt_issuer"),
    ('jwt_issuer = ["a,b"]\n', "jwt_issuer"),
    ('audit_mode = 2026-01-01\n', "audit_mode"),
])
def test_a_wrong_type_names_the_key(tmp_path, text, key):
    env = config_file(tmp_path, "# c\n" + text)
    with pytest.raises(ConfigError, match=rf"{env['PDP_CONFIG']}, line 2: .*\b{key}\b"):
        Settings.from_env(env)


def test_a_bad_value_from_the_file_is_checked_by_the_same_parser_and_located(tmp_path):
    env = config_file(tmp_path, "\nworkers = 0\n")
    with pytest.raises(ConfigError, match=r"PDP_WORKERS must be positive.*\(set as workers "
                                          r"in config file .*pdp\.toml, line 2\)"):
        Settings.from_env(env)
    env = config_file(tmp_path, "jwt_leeway = -1\n")
    with pytest.raises(ConfigError, match=r"PDP_JWT_LEEWAY.*set as jwt_leeway"):
        TokenVerifier.from_env(env)


def test_malformed_toml_gives_the_file_line_and_column(tmp_path):
    env = config_file(tmp_path, 'workers = 2\nthreads = = 4\n')
    with pytest.raises(ConfigError, match=r"pdp\.toml is not valid TOML: .*line 2, column \d+"):
        Settings.from_env(env)


def test_a_missing_or_unreadable_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(missing))}.*No such file"):
        Settings.from_env({"PDP_CONFIG": str(missing)})
    with pytest.raises(ConfigError, match="cannot be read"):
        TokenSettings.from_env({"PDP_CONFIG": str(tmp_path)})          # a directory
    (tmp_path / "latin1.toml").write_bytes(b'bind = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="line 1: not UTF-8"):
        Settings.from_env({"PDP_CONFIG": str(tmp_path / "latin1.toml")})


@pytest.mark.parametrize("text", [
    f'jwt_hs_secret = "{SECRET}\n',                          # unterminated string
    f'jwt_hs_secret = ["{SECRET}"]\n',                       # wrong type
    f'jwt_hs_secret = "{SECRET}"\njwt_hs_secret = "{SECRET}"\n',  # duplicate key
    f'jwt_hs_secrt = "{SECRET}"\n',                          # unknown key
    f'jwt_hs_secret = "short-{PASSWORD[:6]}"\n',             # too short for HS256
    f'database_url = ["postgresql://pdp:{PASSWORD}@db/pdp"]\n',
    f'[database]\nurl = "postgresql://pdp:{PASSWORD}@db/pdp"\n',
])
def test_errors_never_print_a_secret(tmp_path, text):
    env = config_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
        TokenVerifier.from_env(env)
    message = str(err.value)
    assert SECRET not in message and PASSWORD[:6] not in message, message


def test_secrets_are_masked_for_display():
    assert mask("PDP_JWT_HS_SECRET", SECRET) == "***"
    assert mask("PDP_DATABASE_URL", f"postgresql+psycopg://pdp:{PASSWORD}@db:5432/pdp") == \
        "postgresql+psycopg://pdp:***@db:5432/pdp"
    assert PASSWORD not in mask("PDP_DATABASE_URL", f"postgresql://u:{PASSWORD}/x@h/db")
    assert mask("PDP_DATABASE_URL", "sqlite:///var/pdp.db") == "sqlite:///var/pdp.db"
    assert mask("PDP_JWKS", f"https://u:{PASSWORD}@idp/jwks,keys/a.json") == \
        "https://u:***@idp/jwks,keys/a.json"
    assert mask("PDP_DATABASE_URL", f"postgresql://h/db?sslmode=require&password={PASSWORD}") \
        == "postgresql://h/db?sslmode=require&password=***"
    assert mask("PDP_JWKS", f"https://idp/jwks?access_token={PASSWORD}&v=2") == \
        "https://idp/jwks?access_token=***&v=2"
    assert mask("PDP_WORKERS", "4") == "4"


def test_console_session_ttl_and_trusted_proxies():
    settings = Settings.from_env({"PDP_CONSOLE_SESSION_TTL": "600", "PDP_TRUSTED_PROXIES": "2"})
    assert settings.console_session_ttl == 600
    assert settings.trusted_proxies == 2
    defaults = Settings.from_env({})
    assert defaults.console_session_ttl == 8 * 3600 and defaults.trusted_proxies == 0


@pytest.mark.parametrize("name, value", [("PDP_TRUSTED_PROXIES", "-1"),
                                         ("PDP_TRUSTED_PROXIES", "two"),
                                         ("PDP_TRUSTED_PROXIES", "99"),
                                         ("PDP_CONSOLE_SESSION_TTL", "0"),
                                         ("PDP_CONSOLE_SESSION_TTL", "soon")])
def test_bad_console_and_proxy_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_every_setting_read_from_the_environment_is_a_known_variable():
    """What Settings reads is what the config file may set and `pdp config show`
    lists (a setting missing from VARIABLES would be refused in the file)."""
    from pdp.config import VARIABLES

    class Recording(dict):
        def __init__(self):
            super().__init__()
            self.asked = set()

        def get(self, key, default=None):
            self.asked.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            self.asked.add(key)
            return super().__getitem__(key)

        def __contains__(self, key):
            self.asked.add(key)
            return super().__contains__(key)

    environ = Recording()
    Settings._from(environ)
    assert environ.asked, "Settings read nothing through the mapping"
    assert environ.asked <= {v.name for v in VARIABLES}, environ.asked - {v.name for v in VARIABLES}
