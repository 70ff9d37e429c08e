"""Settings of the test process: the demo project's, read from the same environment, then faster.

The processes the fleet and Celery tests start use ``harness.fleet_settings`` instead.
"""

from project.settings import *  # noqa: F403

# The default PBKDF2 spends about 0.3 s of CPU on each hash here (each user created, each password
# login); MD5 is fine for passwords the tests make up.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The demo's logger does not propagate (a Celery worker would print each line twice); the tests'
# collectors and caplog listen on the root logger, so here it propagates.
LOGGING["loggers"]["bettorsense"]["propagate"] = True  # noqa: F405
