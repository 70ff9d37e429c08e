"""Settings of the processes the fleet and Celery tests start (workers, Celery worker and beat).

The demo project's settings, read from the same environment (``DATABASE_URL``, ``CACHE_URL``,
``CELERY_BROKER_URL``, ``CELERY_BROKER_DIR``, ``BETTORSENSE_REFRESH_EVERY``), then:

* ``BETTORSENSE_TEST_OVERRIDES``: a JSON object merged over ``BETTORSENSE``, which is how a test
  aims its subprocesses at its sandbox with its own ``KEY_PREFIX``;
* ``BETTORSENSE_TEST_BEAT_SCHEDULE``: the file of beat's schedule state, so two test runs never
  share one (``celery beat --schedule`` says the same; this also covers code that reads the
  setting).
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import BETTORSENSE, CELERY_BEAT_SCHEDULE_FILENAME

_overrides = json.loads(os.environ.get("BETTORSENSE_TEST_OVERRIDES") or "{}")
if not isinstance(_overrides, dict):
    raise ValueError("BETTORSENSE_TEST_OVERRIDES must be a JSON object.")
BETTORSENSE = {**BETTORSENSE, **_overrides}

CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("BETTORSENSE_TEST_BEAT_SCHEDULE") or CELERY_BEAT_SCHEDULE_FILENAME

# A queue of the test's own, so a Celery worker left over from another run (or a demo worker on the
# same Redis broker) never takes the test's beat ticks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BETTORSENSE_TEST_CELERY_QUEUE") or "celery"
