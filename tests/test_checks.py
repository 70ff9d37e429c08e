"""System checks: each wrong set-up gets its id and a hint."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from celery import Celery, current_app
from celery.schedules import crontab
from celery.schedules import schedule as celery_schedule

from bettorsense import beat
from bettorsense.beat import REFRESH_TASK
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


def refresh_entry(schedule: object) -> dict[str, dict[str, object]]:
    return {"bettorsense-refresh-token": {"task": REFRESH_TASK, "schedule": schedule}}


@pytest.mark.parametrize(
    ("schedule", "check_id"),
    [
        pytest.param(10, None, id="number-within-half-the-window"),
        pytest.param(15.0, None, id="number-at-half-the-window"),
        pytest.param(20, "bettorsense.W005", id="number-over-half-the-window"),
        pytest.param(60.0, "bettorsense.W005", id="the-issue-s-60-s"),
        pytest.param(timedelta(seconds=10), None, id="timedelta-within"),
        pytest.param(timedelta(minutes=1), "bettorsense.W005", id="timedelta-over"),
        pytest.param(celery_schedule(run_every=5), None, id="celery-schedule-within"),
        pytest.param(celery_schedule(run_every=timedelta(seconds=16)), "bettorsense.W005", id="celery-schedule-over"),
        pytest.param(crontab(), "bettorsense.W010", id="crontab-every-minute"),
        pytest.param(crontab(minute="*/5"), "bettorsense.W010", id="crontab-every-5-minutes"),
        pytest.param("every 10 seconds", "bettorsense.W012", id="a-string"),
        pytest.param(-10, "bettorsense.W012", id="negative"),
        pytest.param(0, "bettorsense.W012", id="zero"),
        pytest.param(float("nan"), "bettorsense.W012", id="nan"),
        pytest.param(True, "bettorsense.W012", id="a-bool"),
        pytest.param(None, "bettorsense.W012", id="none"),
    ],
)
def test_the_beat_check_reads_the_real_schedule(good, schedule, check_id):
    good.CELERY_BEAT_SCHEDULE = refresh_entry(schedule)
    assert ids(good) == ({check_id} if check_id else set())


def test_w005_names_the_interval_and_the_window(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_MARGIN": 120}
    good.CELERY_BEAT_SCHEDULE = refresh_entry(timedelta(minutes=2))
    (message,) = check_settings()
    assert message.id == "bettorsense.W005"
    assert "every 120 s" in message.msg and "(REFRESH_MARGIN, 120 s)" in message.msg
    assert "at most 60 seconds" in message.hint


def test_a_wider_window_accepts_a_slower_entry(good):
    """The reverse of the issue's false W005: the setting named nothing real, the schedule does."""
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_MARGIN": 120}
    good.CELERY_BEAT_SCHEDULE = refresh_entry(60)
    assert ids(good) == set()


def test_the_most_frequent_of_several_entries_counts(good):
    good.CELERY_BEAT_SCHEDULE = {
        **refresh_entry(crontab()),
        "fast": {"task": REFRESH_TASK, "schedule": 5.0},
    }
    assert ids(good) == set()


@pytest.fixture
def host_app():
    """A Celery app configured in code, not from Django's settings, as some host projects do."""
    app = Celery("host", set_as_current=False)
    app.conf.beat_schedule = refresh_entry(60.0)
    return app


def test_the_project_package_s_celery_app_is_read(good, host_app, monkeypatch):
    import project

    # Celery's Django guide: the package of the settings module (project/__init__.py) exports celery_app.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "project.settings")
    good.CELERY_BEAT_SCHEDULE = {}
    monkeypatch.setattr(project, "celery_app", host_app)
    assert ids(good) == {"bettorsense.W005"}
    host_app.conf.beat_schedule = refresh_entry(5.0)
    assert ids(good) == set()


def test_without_a_project_app_celery_s_current_app_is_read(good, host_app, monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")  # the package "tests" exports no celery_app
    good.CELERY_BEAT_SCHEDULE = {}
    previous = current_app._get_current_object()
    host_app.set_current()
    try:
        assert beat.celery_app() is host_app
        assert ids(good) == {"bettorsense.W005"}
    finally:
        previous.set_current()


def test_an_entry_of_the_app_wins_over_the_setting_of_the_same_name(good, host_app, monkeypatch):
    import project

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "project.settings")
    good.CELERY_BEAT_SCHEDULE = refresh_entry(5.0)
    monkeypatch.setattr(project, "celery_app", host_app)
    assert ids(good) == {"bettorsense.W005"}  # beat runs the app's 60 s


def test_a_celery_app_export_that_is_no_app_leaves_the_setting_s_schedule(good, monkeypatch):
    import project

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "project.settings")
    monkeypatch.setattr(project, "celery_app", object())
    good.CELERY_BEAT_SCHEDULE = refresh_entry(60.0)
    assert ids(good) == {"bettorsense.W005"}


def test_a_sync_entry_is_found_by_its_task_name(good):
    good.CELERY_BEAT_SCHEDULE = {
        **refresh_entry(10.0),
        "nightly": {"task": beat.SYNC_TASK, "schedule": crontab(hour=4, minute=30)},
    }
    assert beat.sync_scheduled() is True
    good.CELERY_BEAT_SCHEDULE = refresh_entry(10.0)
    assert beat.sync_scheduled() is False


def test_the_old_refresh_every_setting_is_deprecated_not_unknown(good):
    good.BETTORSENSE = {**good.BETTORSENSE, "REFRESH_EVERY": 20}
    (message,) = check_settings()
    assert message.id == "bettorsense.W011"
    assert "no longer read" in message.msg and "beat schedule" in message.hint


@pytest.mark.parametrize(
    ("backend", "missing"),
    [
        ("django.core.cache.backends.redis.RedisCache", "redis"),
        ("django_redis.cache.RedisCache", "redis"),
        ("django_redis.cache.RedisCache", "django_redis"),
    ],
)
def test_a_redis_cache_without_its_client_package_is_an_error(good, monkeypatch, backend, missing):
    good.CACHES = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6379/8"}}
    monkeypatch.setitem(sys.modules, missing, None)  # what Python does for a package that is not installed
    messages = [m for m in check_settings() if m.id == "bettorsense.E005"]
    assert len(messages) == 1 and messages[0].is_serious()
    assert repr(missing) in messages[0].msg
    assert "bettorsense[redis]" in messages[0].hint


def test_a_redis_cache_with_its_client_package_is_fine(good):
    good.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert "bettorsense.E005" not in ids(good)


@pytest.mark.parametrize(
    "change",
    [
        {"BETTORSENSE": {"ENVIRONMENT": "production"}},
        {"BETTORSENSE": {"ENVIRONMENT": "prod"}},
        {"CELERY_BEAT_SCHEDULE": {}},
        {"CELERY_BEAT_SCHEDULE": refresh_entry(crontab())},
        {"CELERY_BEAT_SCHEDULE": refresh_entry(60)},
        {"CELERY_BEAT_SCHEDULE": refresh_entry("x")},
        {"CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}},
        {"CACHES": {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/t"}}},
        {"BETTORSENSE": {"ENVIRONMENT": "production", "CLIENT_ID": "a", "CLIENT_SECRET": "b", "API_URL": "http://x"}},
        {"BETTORSENSE": {"ENVIRONMENT": "integration", "CLIENT_ID": "a", "CLIENT_SECRET": "b", "REFRESH_EVERY": 5}},
    ],
)
def test_hints_are_written_for_a_host_project_not_the_demo(good, change):
    for name, value in change.items():
        setattr(good, name, value)
    messages = check_settings()
    assert messages, "the change should give a message"
    for message in messages:
        text = f"{message.msg} {message.hint}".lower()
        assert "demo" not in text and "project/" not in text and "-a project" not in text, message


def test_manage_py_check_runs_them(good):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    good.BETTORSENSE = {"ENVIRONMENT": "production"}
    with pytest.raises(SystemCheckError, match=r"bettorsense\.E001"):
        call_command("check")
