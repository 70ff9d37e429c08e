"""Every BETTORSENSE setting is defined once, in bettorsense.conf.SETTINGS.

Config's fields, the validation, DEFAULTS and the README's configuration table must agree with that
table; a mistyped setting names its key and never shows a secret, not even on the technical 500 page.

Print the README's table with ``.venv/bin/python -m tests.test_settings``.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from dataclasses import fields
from datetime import time
from pathlib import Path
from typing import get_type_hints

import pytest
from django.test import override_settings
from django.views.debug import ExceptionReporter

from bettorsense.conf import (
    DEFAULTS,
    ENVIRONMENT_PRESETS,
    SETTINGS,
    Config,
    PresetOverride,
    get_config,
    markdown_table,
)
from bettorsense.exceptions import BettorSenseConfigurationError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_SETTINGS = ROOT / "project" / "settings.py"

CLIENT_SECRET = "client-secret-d41d8cd9"
HEALTH_TOKEN = "health-token-8f00b204"
TOKEN_ENCRYPTION_KEY = "encryption-key-e9800998"
SECRET_KEY = "django-secret-key-ecf8427e"
SECRETS = (CLIENT_SECRET, HEALTH_TOKEN, TOKEN_ENCRYPTION_KEY, SECRET_KEY)


# --- the table and Config ------------------------------------------------------------------


def test_table_has_one_entry_per_config_field_in_field_order():
    # ``client`` is the credential set's name, the key of CLIENTS, not a setting.
    assert [setting.attribute for setting in SETTINGS] == [f.name for f in fields(Config) if f.name != "client"]


def test_setting_names_are_unique():
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))


def test_each_parser_returns_the_type_of_its_field():
    field_types = get_type_hints(Config)
    for setting in SETTINGS:
        returned = get_type_hints(inspect.unwrap(type(setting.parser).parse))["return"]
        if isinstance(setting.parser, PresetOverride):
            # None until get_config puts the preset's value in its place.
            assert (returned, field_types[setting.attribute]) == (str | None, str), setting.name
        else:
            assert returned == field_types[setting.attribute], setting.name


def test_secrets_are_the_fields_kept_out_of_repr():
    assert {s.attribute for s in SETTINGS if s.secret} == {f.name for f in fields(Config) if not f.repr}
    assert {s.name for s in SETTINGS if s.secret} == {
        "CLIENT_SECRET",
        "TOKEN_ENCRYPTION_KEY",
        "HEALTH_TOKEN",
        "PSEUDONYM_KEY",
    }


def test_defaults_map_every_name_to_its_default():
    assert list(DEFAULTS) == [setting.name for setting in SETTINGS]
    assert (DEFAULTS["BACKOFF_BASE"], DEFAULTS["MAX_RETRIES"], DEFAULTS["BREAKER_THRESHOLD"]) == (1.0, 3, 5)


# --- reading -------------------------------------------------------------------------------


def test_empty_settings_give_the_defaults(settings):
    settings.BETTORSENSE = {}
    settings.SECRET_KEY = SECRET_KEY
    config = get_config()
    preset = ENVIRONMENT_PRESETS["integration"]
    assert (config.environment, config.token_url, config.audience, config.api_url) == (
        "integration",
        preset.token_url,
        preset.audience,
        preset.api_url,
    )
    assert (config.client_id, config.client_secret, config.health_token) == ("", "", "")
    assert (config.bookmaker_id, config.sub_bookmaker_id) == (None, None)
    assert config.encryption_keys == (SECRET_KEY,)
    assert (config.refresh_margin, config.connect_timeout, config.stale_ttl) == (30.0, 3.05, 7 * 86400.0)
    assert (config.max_retries, config.breaker_threshold, config.batch_page_size) == (3, 5, 1000)
    assert (config.profile_cache, config.serve_from_store) == (True, True)
    assert config.recompute_at_utc == time(4, 0)
    assert (config.batch_date_param, config.batch_date_format) == ("changedSince", "datetime")
    assert (config.cache_alias, config.key_prefix, config.probe_account_id) == ("default", "bettorsense", "player_1")


def test_environment_is_lower_cased_and_overrides_win_over_the_preset(settings):
    settings.BETTORSENSE = {
        "ENVIRONMENT": " Production ",
        "TOKEN_URL": "https://stg-auth.example.test/oauth/token",
        "API_URL": "https://api.example.test/rg/",
        "TOKEN_ENCRYPTION_KEY": TOKEN_ENCRYPTION_KEY,
    }
    config = get_config()
    assert config.environment == "production"
    assert config.token_url == "https://stg-auth.example.test/oauth/token"
    assert config.audience == ENVIRONMENT_PRESETS["production"].audience
    assert config.api_url == "https://api.example.test/rg"
    assert config.encryption_keys == (TOKEN_ENCRYPTION_KEY,)


def test_values_given_as_strings_are_read_as_before(settings):
    settings.BETTORSENSE = {
        "REFRESH_MARGIN": "20",
        "MAX_RETRIES": "2",
        "BREAKER_THRESHOLD": 2.0,
        "BOOKMAKER_ID": "7",
        "SUB_BOOKMAKER_ID": "",
        "RECOMPUTE_AT_UTC": time(5, 30),
        "PROBE_ACCOUNT_ID": " player_9 ",
    }
    config = get_config()
    assert (config.refresh_margin, config.max_retries, config.breaker_threshold) == (20.0, 2, 2)
    assert (config.bookmaker_id, config.sub_bookmaker_id) == (7, None)
    assert config.recompute_at_utc == time(5, 30)
    assert config.probe_account_id == "player_9"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ENVIRONMENT", "staging", "expected one of: integration, production, sandbox"),
        ("REFRESH_MARGIN", "thirty", "must be a number of seconds"),
        ("SYNC_STALE_AFTER", 10, "must be at least 60"),
        ("CONNECT_TIMEOUT", None, "must be a number of seconds"),
        ("MAX_RETRIES", "three", "must be an integer"),
        ("BREAKER_THRESHOLD", 0, "must be at least 1"),
        ("BOOKMAKER_ID", "abc", "must be an integer or None"),
        ("RECOMPUTE_AT_UTC", "four o'clock", "must be a time such as '04:00'"),
        ("BATCH_DATE_FORMAT", "iso", "expected one of: date, datetime"),
        ("BATCH_DATE_PARAM", "  ", "must be a non-empty string"),
        ("PROBE_ACCOUNT_ID", None, "must be a non-empty string"),
    ],
)
def test_a_wrong_value_names_its_key_and_what_was_expected(settings, name, value, expected):
    settings.BETTORSENSE = {name: value}
    with pytest.raises(BettorSenseConfigurationError) as caught:
        get_config()
    assert f"BETTORSENSE[{name!r}]" in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.__suppress_context__


def test_settings_that_are_not_a_dict(settings):
    settings.BETTORSENSE = [("CLIENT_ID", "id")]
    with pytest.raises(BettorSenseConfigurationError, match=r"settings\.BETTORSENSE must be a dict"):
        get_config()


# --- memoised until a setting changes ------------------------------------------------------


def test_memoised_until_bettorsense_secret_key_or_caches_change():
    first = get_config()
    assert get_config() is first
    with override_settings(BETTORSENSE={"REFRESH_MARGIN": 12}):
        assert get_config().refresh_margin == 12.0
    assert get_config() == first
    with override_settings(SECRET_KEY=SECRET_KEY, BETTORSENSE={}):
        assert get_config().encryption_keys == (SECRET_KEY,)
    caches_before = get_config()
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        assert get_config() is not caches_before


def test_other_settings_keep_the_memo():
    first = get_config()
    with override_settings(TIME_ZONE="Europe/Zurich"):
        assert get_config() is first


# --- no secret in a traceback --------------------------------------------------------------


def _config_error() -> BettorSenseConfigurationError:
    # The traceback starts in this frame, which holds no secret.
    try:
        get_config()
    except BettorSenseConfigurationError as err:
        return err
    raise AssertionError("get_config() accepted a mistyped setting")


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    ("name", "value"),
    [("ENVIRONMENT", "staging"), ("REFRESH_MARGIN", "thirty"), ("PROBE_ACCOUNT_ID", "")],
)
def test_the_technical_500_page_of_a_mistyped_setting_shows_no_secret(settings, debug, name, value):
    settings.DEBUG = debug
    settings.SECRET_KEY = SECRET_KEY
    settings.BETTORSENSE = {
        "CLIENT_ID": "client-id",
        "CLIENT_SECRET": CLIENT_SECRET,
        "HEALTH_TOKEN": HEALTH_TOKEN,
        "TOKEN_ENCRYPTION_KEY": TOKEN_ENCRYPTION_KEY,
        name: value,
    }
    error = _config_error()
    page = ExceptionReporter(None, type(error), error, error.__traceback__).get_traceback_html()
    assert f"BETTORSENSE[&#x27;{name}&#x27;]" in page
    assert "bettorsense/conf.py" in page
    assert [secret for secret in SECRETS if secret in page] == []


# --- the README's configuration table ------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def readme_rows() -> dict[str, tuple[str, str, str]]:
    """{key: (demo env variable, default, meaning)} from the table under "## Configuration"."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in lines[2:]:
        key, variable, default, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        assert re.fullmatch(r"`[A-Z_]+`", key), f"one key per row, in backticks: {line}"
        rows[_cell(key)] = (_cell(variable), _cell(default), _cell(meaning))
    return rows


def _is_env_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    function = node.func
    return (isinstance(function, ast.Name) and function.id == "env") or (
        isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and function.value.id == "env"
    )


def demo_env_variables() -> dict[str, str]:
    """{BETTORSENSE key: the environment variable project/settings.py reads it from}."""
    assigned: dict[str, ast.expr] = {}
    for node in ast.parse(DEMO_SETTINGS.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned[node.targets[0].id] = node.value
    bettorsense = assigned["BETTORSENSE"]
    assert isinstance(bettorsense, ast.Dict)
    variables: dict[str, str] = {}
    for key, value in zip(bettorsense.keys, bettorsense.values, strict=True):
        assert isinstance(key, ast.Constant)
        if isinstance(value, ast.Name):
            value = assigned[value.id]
        if _is_env_call(value):
            assert isinstance(value, ast.Call) and isinstance(value.args[0], ast.Constant)
            variables[key.value] = value.args[0].value
    return variables


def test_readme_names_every_setting():
    missing = [setting.name for setting in SETTINGS if setting.name not in readme_rows()]
    assert missing == [], "settings missing from README.md's configuration table"


def test_readme_names_no_setting_that_does_not_exist():
    assert sorted(set(readme_rows()) - set(DEFAULTS)) == [], "README.md names settings that conf.py does not have"


def test_readme_defaults_agree_with_the_table():
    rows = readme_rows()
    disagreeing = {
        s.name: (rows[s.name][1], _cell(s.parser.show(s.default)))
        for s in SETTINGS
        if s.name in rows and rows[s.name][1] != _cell(s.parser.show(s.default))
    }
    assert disagreeing == {}, "{key: (README, conf.py)}"


def test_readme_meanings_agree_with_the_table():
    rows = readme_rows()
    disagreeing = [s.name for s in SETTINGS if s.name in rows and rows[s.name][2] != _cell(s.meaning)]
    assert disagreeing == []


def test_readme_demo_env_variables_are_the_ones_the_demo_reads():
    demo = demo_env_variables()
    assert demo["CLIENT_SECRET"] == "BETTORSENSE_CLIENT_SECRET"
    assert demo["REFRESH_MARGIN"] == "BETTORSENSE_REFRESH_MARGIN"
    assert {key: row[0] for key, row in readme_rows().items() if row[0]} == demo


def test_readme_table_is_the_generated_one():
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    assert markdown_table(demo_env_variables()) in section


if __name__ == "__main__":
    sys.stdout.write(markdown_table(demo_env_variables()) + "\n")
