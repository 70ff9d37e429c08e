"""System checks: each wrong set-up gets its id and a hint."""

from __future__ import annotations

import pytest

from bettorsense.checks import check_settings
from bettorsense.conf import DEFAULTS


def ids(settings) -> set[str]:
    return {message.id for message in check_settings()}


@pytest.fixture
def good(settings):
    settings.BETTORSENSE = {"ENVIRONMENT": "integration", "CLIENT_ID": "id", "CLIENT_SECRET": "secret"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}}
    return settings


def test_demo_settings_pass(settings):
    assert ids(settings) == set()


def test_good_settings_pass(good):
    assert ids(good) == set()


def test_missing_credentials(good):
    good.BETTORSENSE = {"ENVIRONMENT": "production"}
    messages = check_settings()
    assert [m.id for m in messages] == ["bettorsense.E001"]
    assert "CLIENT_SECRET" in messages[0].hint


def test_unknown_environment(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "ENVIRONMENT": "staging"}
    messages = check_settings()
    assert [m.id for m in messages] == ["bettorsense.E002"]
    assert "integration" in messages[0].msg


def test_unknown_setting_name(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_MARGINE": 20}
    assert ids(good) == {"bettorsense.W004"}


def test_each_unknown_setting_name_is_named(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_MARGINE": 20, "client_id": "id"}
    messages = [m for m in check_settings() if m.id == "bettorsense.W004"]
    assert sorted(m.msg for m in messages) == [
        "BETTORSENSE['REFRESH_MARGINE'] is not a setting of bettorsense.",
        "BETTORSENSE['client_id'] is not a setting of bettorsense.",
    ]


def test_every_setting_of_the_table_is_known(good):
    good.BETTORSENSE = {**DEFAULTS, **good.BETTORSENSE}
    assert ids(good) == set()


def test_mistyped_value(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_MARGIN": "thirty"}
    messages = check_settings()
    assert [m.id for m in messages] == ["bettorsense.E002"]
    assert "BETTORSENSE['REFRESH_MARGIN'] must be a number of seconds" in messages[0].msg


def test_cache_alias_missing(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "CACHE_ALIAS": "tokens"}
    assert ids(good) == {"bettorsense.E003"}


@pytest.mark.parametrize(
    ("backend", "check_id"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", "bettorsense.W001"),
        ("django.core.cache.backends.dummy.DummyCache", "bettorsense.W001"),
        ("django.core.cache.backends.filebased.FileBasedCache", "bettorsense.W002"),
        ("django.core.cache.backends.redis.RedisCache", None),
    ],
)
def test_cache_that_processes_do_not_share(good, backend, check_id):
    good.CACHES = {"default": {"BACKEND": backend, "LOCATION": "bettorsense-check"}}
    assert ids(good) == ({check_id} if check_id else set())


def test_no_beat_entry(good):
    good.CELERY_BEAT_SCHEDULE = {"other": {"task": "other.task", "schedule": 5}}
    messages = check_settings()
    assert [m.id for m in messages] == ["bettorsense.W003"]
    assert "CELERY_BEAT_SCHEDULE" in messages[0].hint


def test_beat_too_slow_for_the_window(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_EVERY": 20, "REFRESH_MARGIN": 30}
    assert ids(good) == {"bettorsense.W005"}


def test_manage_py_check_runs_them(good):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    good.BETTORSENSE = {"ENVIRONMENT": "production"}
    with pytest.raises(SystemCheckError, match=r"bettorsense\.E001"):
        call_command("check")
