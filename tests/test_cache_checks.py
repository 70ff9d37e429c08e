"""System checks about the token cache's backend: culling, Redis replicas, what Redis unpickles."""

from __future__ import annotations

from typing import Any

import pytest

from bettorsense.checks import check_cache_kinds

DB = "django.core.cache.backends.db.DatabaseCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
REDIS = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS = "django_redis.cache.RedisCache"


def ids() -> set[str]:
    return {str(message.id) for message in check_cache_kinds()}


@pytest.fixture
def good(settings: Any) -> Any:
    settings.BETTORSENSE = {"ENVIRONMENT": "integration", "CLIENT_ID": "id", "CLIENT_SECRET": "secret"}
    return settings


def caches(settings: Any, **entries: dict[str, Any]) -> None:
    settings.CACHES = entries


@pytest.mark.parametrize("backend", [DB, LOCMEM])
def test_profiles_in_a_culling_token_cache_are_warned_about(good, backend):
    caches(good, default={"BACKEND": backend, "LOCATION": "t"})
    assert ids() == {"bettorsense.W020"}
    [message] = check_cache_kinds()
    assert "PROFILE_CACHE_ALIAS" in str(message.hint)


def test_profiles_in_a_cache_of_their_own_are_fine(good):
    caches(good, default={"BACKEND": DB, "LOCATION": "t"}, profiles={"BACKEND": DB, "LOCATION": "p"})
    good.BETTORSENSE = {**good.BETTORSENSE, "PROFILE_CACHE_ALIAS": "profiles"}
    assert ids() == set()


def test_no_profile_cache_no_culling_warning(good):
    caches(good, default={"BACKEND": DB, "LOCATION": "t"})
    good.BETTORSENSE = {**good.BETTORSENSE, "PROFILE_CACHE": False}
    assert ids() == set()


@pytest.mark.parametrize("backend", [REDIS, DJANGO_REDIS])
@pytest.mark.parametrize(
    "location",
    [
        ["redis://primary:6379/1", "redis://replica:6379/1"],
        "redis://primary:6379/1,redis://replica:6379/1",
        "redis://primary:6379/1;redis://replica:6379/1",
    ],
)
def test_a_redis_token_cache_with_replicas_is_warned_about(good, backend, location):
    caches(good, default={"BACKEND": backend, "LOCATION": location})
    assert ids() == {"bettorsense.W021"}


@pytest.mark.parametrize("backend", [REDIS, DJANGO_REDIS])
@pytest.mark.parametrize("location", ["redis://primary:6379", "redis://primary:6379/0", "rediss://primary/0"])
def test_a_token_cache_in_redis_database_0_gets_the_dedicated_database_hint(good, backend, location):
    caches(good, default={"BACKEND": backend, "LOCATION": location})
    [message] = check_cache_kinds()
    assert message.id == "bettorsense.I020"
    assert "ACL" in str(message.hint) and "unpickle" in str(message.msg)


@pytest.mark.parametrize(
    "location", ["redis://primary:6379/5", "redis://bettorsense:pw@primary:6379/0", "redis://primary:6379?db=3"]
)
def test_a_token_cache_in_a_database_or_acl_user_of_its_own_gets_no_hint(good, location):
    caches(good, default={"BACKEND": REDIS, "LOCATION": location})
    assert ids() == set()


def test_replicas_of_a_cache_the_app_does_not_use_are_fine(good):
    caches(
        good,
        default={"BACKEND": REDIS, "LOCATION": "redis://primary:6379/1"},
        pages={"BACKEND": REDIS, "LOCATION": ["redis://primary:6379/2", "redis://replica:6379/2"]},
    )
    assert ids() == set()
