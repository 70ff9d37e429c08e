"""The renewal lock and the tombstone under forced interleavings, on each backend people run.

Each race of the review is replayed deterministically: a hook on the cache makes the other
"process" act at exactly the moment the old read-then-write code was exposed (between its read and
its write). The backends are the database cache, Django's ``RedisCache`` and django-redis, against
real Redis (``TEST_REDIS_URL``, else ``CACHE_URL`` when it is Redis, else ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command

from bettorsense import locks
from bettorsense.atomic import compare_and_swap
from bettorsense.cache import RaisingView, backend_of, shared_cache
from bettorsense.conf import get_config
from bettorsense.locks import BREAK_AFTER, LOCK_KIND, OTHER_VERSION_OWNER, LockEntry, OwnerLock
from bettorsense.sealing import seal
from bettorsense.tokens.endpoint import request_deadline
from bettorsense.tokens.manager import TokenManager
from bettorsense.tokens.shared import SharedTokenCache, renewal_lock_ttl
from bettorsense.tokens.token import AccessToken, Tombstone
from tests.support.clock import FakeClock
from tests.support.sandbox import token_requests

pytestmark = pytest.mark.django_db(transaction=True)

REQUIRED = os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"


def redis_url() -> str:
    given = os.environ.get("TEST_REDIS_URL") or os.environ.get("CACHE_URL", "")
    return given if given.startswith("redis://") else "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


BACKENDS: dict[str, dict[str, Any]] = {
    "database": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "bettorsense_cache"},
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
    "django-redis": {"BACKEND": "django_redis.cache.RedisCache"},
    # Answered through its client by the app (bettorsense.cache.RaisingView): the same behaviour.
    "django-redis-ignore-exceptions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True},
    },
}
EXPECTED_KIND = {
    "database": "database-statement",
    "redis": "redis-lua",
    "django-redis": "redis-lua",
    "django-redis-ignore-exceptions": "redis-lua",
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, settings: Any, configure: Callable[..., Any]) -> Iterator[str]:
    """The token cache on one backend; its name."""
    name = str(request.param)
    entry = dict(BACKENDS[name])
    if name != "database":
        if not redis_reachable():
            if REQUIRED:
                pytest.fail(f"Redis at {redis_url()} is required (BETTORSENSE_REQUIRE_SERVICES=1)")
            pytest.skip(f"no Redis at {redis_url()}")
        entry["LOCATION"] = redis_url()
    settings.CACHES = {**settings.CACHES, "under_test": entry}
    if name == "database":
        call_command("createcachetable", verbosity=0)  # the test database has it only if the default cache is one
    configure(CACHE_ALIAS="under_test")
    yield name
    caches["under_test"].close()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def lock_of(clock: FakeClock, ttl: float = 30.0) -> OwnerLock:
    return OwnerLock(get_config(), "test:lock", ttl=ttl, clock=clock)


def expire(lock: OwnerLock) -> None:
    """The lock's TTL ran out (as if), without waiting for it."""
    shared_cache(lock.config).delete_many([lock.key])


def called(config: Any) -> Any:
    """The object whose methods the app calls: the cache, or django-redis' client behind the app's view."""
    cache = shared_cache(config)
    return cache.backend.client if isinstance(cache, RaisingView) else cache


def after_first_get_of(key: str, action: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``action`` right after the first read of ``key`` through the token cache: the other process."""
    cache = called(get_config())
    real_get = cache.get
    fired = []

    def get(k: str, default: Any = None, version: Any = None) -> Any:
        found = real_get(k, default, version=version)
        if k == key and not fired:
            fired.append(True)
            action()
        return found

    monkeypatch.setattr(cache, "get", get)


def test_each_backend_gets_its_atomic_swap(backend):
    assert compare_and_swap(backend_of(shared_cache(get_config()))).kind == EXPECTED_KIND[backend]


def test_the_lock_entry_names_its_owner_and_deadline(backend, fake_clock):
    lock = lock_of(fake_clock, ttl=30)
    owner = lock.acquire()
    assert owner is not None
    entry = lock.entry_of(shared_cache(lock.config).get(lock.key))
    assert isinstance(entry, LockEntry) and entry.owner == owner and entry.deadline == fake_clock.now() + 30
    assert lock.holder() == owner


def test_a_release_after_expiry_leaves_the_new_holders_lock(backend, fake_clock):
    first, second = lock_of(fake_clock), lock_of(fake_clock)
    a = first.acquire()
    assert a is not None
    expire(first)
    b = second.acquire()
    assert b is not None

    first.release(a)

    assert second.holder() == b


def test_a_release_cannot_delete_a_lock_taken_between_its_read_and_its_delete(backend, fake_clock, monkeypatch):
    """The review's interleaving: A reads its own lock, A's lock expires and B takes it, A deletes.

    B takes over right before A's release writes, after whatever A read: the delete must compare
    with what is stored at that moment, in the same step.
    """
    first, second = lock_of(fake_clock), lock_of(fake_clock)
    a = first.acquire()
    assert a is not None
    taken: list[str | None] = []
    real_swap = locks.compare_and_swap

    class TakeOverFirst:
        def __init__(self, swap: Any) -> None:
            self.swap = swap
            self.kind = swap.kind

        def delete_if(self, key: str, expected: Any) -> bool:
            expire(first)
            taken.append(second.acquire())
            return bool(self.swap.delete_if(key, expected))

    monkeypatch.setattr(locks, "compare_and_swap", lambda cache: TakeOverFirst(real_swap(cache)))
    cache = called(first.config)
    real_delete = cache.delete

    def delete(key: str, version: Any = None) -> bool:  # a plain delete, as the read-then-delete did
        expire(first)
        taken.append(second.acquire())
        return bool(real_delete(key, version=version))

    monkeypatch.setattr(cache, "delete", delete)
    first.release(a)
    monkeypatch.undo()

    assert taken[0] is not None
    assert second.holder() == taken[0]
    assert lock_of(fake_clock).acquire() is None  # so a third process cannot take it while B renews


def test_a_refresh_after_expiry_does_not_extend_the_new_holders_lock(backend, fake_clock):
    first, second = lock_of(fake_clock), lock_of(fake_clock)
    a = first.acquire()
    assert a is not None
    expire(first)
    b = second.acquire()
    assert b is not None

    assert first.refresh(a) is False
    assert second.holder() == b
    assert second.refresh(b) is True
    entry = second.entry_of(shared_cache(second.config).get(second.key))
    assert isinstance(entry, LockEntry) and entry.owner == b


@pytest.mark.parametrize(
    "foreign", [7, "7", "not json", '{"owner": "x", "deadline": 1}', "bs1.AAAA", "bs1." + "A" * 80]
)
def test_a_foreign_lock_without_expiry_is_broken_after_a_bounded_wait(backend, fake_clock, foreign):
    """``SET <key> 7`` with no expiry used to stop every caller for ever."""
    lock = lock_of(fake_clock)
    caches["under_test"].set(lock.key, foreign, None)
    assert lock.holder() is None  # not a live holder: callers go on to take it
    started = fake_clock.monotonic()

    owner = lock.acquire()

    assert owner is not None and lock.holder() == owner
    assert fake_clock.monotonic() - started == BREAK_AFTER  # the bounded wait, on the test's clock


def test_a_lock_past_its_deadline_is_broken(backend, fake_clock):
    lock = lock_of(fake_clock, ttl=30)
    dead = seal(lock.config, {"owner": "dead-1", "deadline": fake_clock.now() - 120}, key=lock.key, kind=LOCK_KIND)
    caches["under_test"].set(lock.key, dead, None)
    assert lock.acquire() is not None


def test_a_lock_copied_from_another_key_is_no_lock(backend, fake_clock):
    """Sealed entries are bound to their key: another lock's live entry, copied here, is broken."""
    here, elsewhere = lock_of(fake_clock), OwnerLock(get_config(), "other:lock", ttl=30, clock=fake_clock)
    assert elsewhere.acquire() is not None
    caches["under_test"].set(here.key, caches["under_test"].get(elsewhere.key), None)
    assert here.holder() is None
    assert here.acquire() is not None


def test_another_versions_lock_is_respected(backend, fake_clock):
    """During a rolling upgrade the other version's lock is held for its own TTL, not broken."""
    lock = lock_of(fake_clock)
    caches["under_test"].set(lock.key, "bs2.written-by-a-newer-version", 30)
    assert lock.holder() == OTHER_VERSION_OWNER
    assert lock.acquire() is None
    assert fake_clock.monotonic() == 0


def test_a_live_lock_is_not_broken(backend, fake_clock):
    first, second = lock_of(fake_clock, ttl=30), lock_of(fake_clock, ttl=30)
    a = first.acquire()
    assert second.acquire() is None
    assert second.holder() == a
    assert fake_clock.monotonic() == 0  # no wait: a live holder is not a stale one


def test_a_lock_changed_during_the_wait_is_not_broken(backend, fake_clock, monkeypatch):
    lock = lock_of(fake_clock)
    caches["under_test"].set(lock.key, "7", None)
    live = lock_of(fake_clock)

    def its_owner_rewrites_it(seconds: float) -> None:
        caches["under_test"].set(lock.key, "8", None)  # someone is using the key: not stale for us

    monkeypatch.setattr(fake_clock, "sleep", its_owner_rewrites_it)
    assert live.acquire() is None
    assert caches["under_test"].get(lock.key) == "8"


def test_the_fleet_renews_through_a_foreign_lock(backend, sandbox):
    config = get_config()
    caches["under_test"].set(SharedTokenCache(config).lock_key, 7, None)
    assert TokenManager(config).get_token().value
    assert token_requests(sandbox) == 1


# --- the tombstone ----------------------------------------------------------------------------------


def test_the_tombstone_replaces_the_token_it_was_asked_to(backend, sandbox):
    manager = TokenManager(get_config())
    token = manager.get_token()
    assert manager.invalidate(token.value) is True
    assert isinstance(manager.shared.read_token(), Tombstone)


def test_the_tombstone_never_overwrites_a_token_published_after_its_read(backend, sandbox, monkeypatch):
    """The review's interleaving: A reads token 1 (401), B publishes token 2, A writes the tombstone."""
    config = get_config()
    a, b = TokenManager(config), TokenManager(config)
    first = a.get_token()
    newer = AccessToken(
        value="newer.token.value", token_type="Bearer", issued_at=first.issued_at, expires_at=first.expires_at + 60
    )

    after_first_get_of(a.shared.token_key, lambda: b.shared.write_token(newer), monkeypatch)
    replaced = a.invalidate(first.value)

    assert replaced is False
    current = b.shared.read_token()
    assert isinstance(current, AccessToken) and current.value == newer.value


# --- the lock outlives the token request ------------------------------------------------------------


@pytest.mark.parametrize(("connect", "read"), [(0.5, 1.5), (1.0, 2.0), (3.05, 10.0), (10.0, 60.0)])
def test_the_renewal_lock_outlives_the_longest_token_request(configure, connect, read):
    configure(CONNECT_TIMEOUT=connect, READ_TIMEOUT=read)
    config = get_config()
    assert renewal_lock_ttl(config) > request_deadline(config) == connect + read
    assert SharedTokenCache(config).renewal_lock.ttl >= renewal_lock_ttl(config)


def test_a_caller_arriving_during_a_slow_token_answer_waits_for_it(backend, sandbox, configure):
    from bettorsense.sandbox import Fault
    from tests.support.threads import run_in_threads

    configure(CACHE_ALIAS="under_test", CONNECT_TIMEOUT=0.5, READ_TIMEOUT=2.0)
    sandbox.state.add_fault(Fault(target="token", kind="slow", delay=1.5, times=1))
    config = get_config()
    managers = [TokenManager(config) for _ in range(4)]
    calls = iter(range(4))
    results = run_in_threads(lambda: managers[next(calls)].get_token(), 4)

    assert all(isinstance(result, AccessToken) for result in results), results
    assert len({result.value for result in results}) == 1
    assert token_requests(sandbox) == 1
