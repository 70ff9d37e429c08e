"""Settings of every process the end-to-end suite starts: the demo project's own, plus a few overrides.

Gunicorn, the Celery worker, Celery beat and the management commands all run the demo project
(``project.settings``) from the same environment variables ``make demo`` reads. On top of that:

* ``BETTORSENSE_E2E_OVERRIDES``: a JSON object merged over ``BETTORSENSE`` (a ``KEY_PREFIX`` of the
  scenario's own, a shorter breaker cool-down and read timeout so that a scenario fits in minutes);
* ``BETTORSENSE_E2E_BEAT_SCHEDULE``: beat's schedule file, in the scenario's directory;
* ``BETTORSENSE_E2E_CLIENTS`` (scenario 13): a JSON object, ``BETTORSENSE['CLIENTS']``: more credential sets;
* ``BETTORSENSE_E2E_QUEUE``: a Celery queue of the scenario's own, so that no other worker on the
  machine (another engineer's test, a demo) takes its beat ticks;
* ``BETTORSENSE_E2E_SILENT_REDIS=1`` (scenario 10): the token cache is django-redis with
  ``IGNORE_EXCEPTIONS`` and the client settings the README recommends for it (no retries, short
  socket timeouts).
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import BETTORSENSE, CACHES, CELERY_BEAT_SCHEDULE_FILENAME

_overrides = json.loads(os.environ.get("BETTORSENSE_E2E_OVERRIDES") or "{}")
if not isinstance(_overrides, dict):
    raise ValueError("BETTORSENSE_E2E_OVERRIDES must be a JSON object.")
BETTORSENSE = {**BETTORSENSE, **_overrides}
if os.environ.get("BETTORSENSE_E2E_CLIENTS"):
    BETTORSENSE["CLIENTS"] = json.loads(os.environ["BETTORSENSE_E2E_CLIENTS"])

CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("BETTORSENSE_E2E_BEAT_SCHEDULE") or CELERY_BEAT_SCHEDULE_FILENAME
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BETTORSENSE_E2E_QUEUE") or "celery"

if os.environ.get("BETTORSENSE_E2E_SILENT_REDIS") == "1":
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    _silent = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHES["default"]["LOCATION"],
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 0)},
        },
    }
    CACHES = {**CACHES, "default": _silent, "profiles": _silent}  # the token cache and the profiles'
