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


def test_the_poll_interval_defaults_to_5s_on_postgresql():
    settings = Settings.from_env({"PDP_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert settings.effective_poll_interval == 5.0


def test_empty_values_mean_the_default():
    assert Settings.from_env({"PDP_DATABASE_URL": " ", "PDP_POLL_INTERVAL": ""}) == Settings()


@pytest.mark.parametrize("name, value", [
    ("PDP_POLL_INTERVAL", "soon"), ("PDP_POLL_INTERVAL", "0"), ("PDP_POLL_INTERVAL", "-1"),
    ("PDP_POLL_INTERVAL", "nan"), ("PDP_POLL_INTERVAL", "inf"),
    ("PDP_MAX_DATA_BYTES", "1.5"), ("PDP_MAX_DATA_BYTES", "0"),
])
def test_bad_values_are_refused_with_the_variable_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().database_url = "x"
