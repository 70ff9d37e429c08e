"""Settings of every process the end-to-end suite starts: the demo project's own, plus a few overrides.

Gunicorn, the Celery worker, Celery beat and the management commands all run the demo project
(``project.settings``) from the same environment variables ``make demo`` reads. On top of that:

* ``BETTORSENSE_E2E_OVERRIDES``: a JSON object merged over ``BETTORSENSE`` (a ``KEY_PREFIX`` of the
  scenario's own, a shorter breaker cool-down and read timeout so that a scenario fits in minutes);
* ``BETTORSENSE_E2E_BEAT_SCHEDULE``: beat's schedule file, in the scenario's directory;
* ``BETTORSENSE_E2E_QUEUE``: a Celery queue of the scenario's own, so that no other worker on the
  machine (another engineer's test, a demo) takes its beat ticks.
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import BETTORSENSE, CELERY_BEAT_SCHEDULE_FILENAME

_overrides = json.loads(os.environ.get("BETTORSENSE_E2E_OVERRIDES") or "{}")
if not isinstance(_overrides, dict):
    raise ValueError("BETTORSENSE_E2E_OVERRIDES must be a JSON object.")
BETTORSENSE = {**BETTORSENSE, **_overrides}

CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("BETTORSENSE_E2E_BEAT_SCHEDULE") or CELERY_BEAT_SCHEDULE_FILENAME
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BETTORSENSE_E2E_QUEUE") or "celery"
