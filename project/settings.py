"""Settings of the demo project.

This is the only module that reads the environment (through django-environ). The embedded
defaults run the demo on one machine with no services: SQLite, Django's database cache and
Celery's filesystem broker. Point DATABASE_URL, CACHE_URL and CELERY_BROKER_URL at PostgreSQL
and Redis for production-like runs.
"""

import os
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# The default is for the demo only; system check security.W009 flags it when DEBUG is off.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-bettorsense-demo-key-do-not-use-in-production")
# Comma-separated; the old key during a rotation: what it sealed still opens (README, "Security").
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bettorsense",
    # The demo itself: its management commands (bettorsense_demo_user) ship with no install of the app.
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JS) without DEBUG, in runserver and under gunicorn alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that the worker processes the tests start share the test database;
    # one per test run, so that two runs on one machine do not delete each other's.
    RUN_DIR.mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / f"test-db-{os.getpid()}.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

CACHES = {"default": env.cache("CACHE_URL", default="dbcache://bettorsense_cache")}
# Risk profiles in a cache of their own, so they never fill (and, in the database cache, cull) the
# token's entries (bettorsense.W020): a table of their own beside the database cache, else CACHE_URL's.
_SHARED_PROFILE_CACHE = CACHES["default"]["BACKEND"] != "django.core.cache.backends.db.DatabaseCache"
CACHES["profiles"] = env.cache(
    "PROFILE_CACHE_URL",
    default=env("CACHE_URL") if _SHARED_PROFILE_CACHE else "dbcache://bettorsense_profile_cache",
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# The demo serves straight from the apps' static folders, so it needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# --- Celery -------------------------------------------------------------------------------
# "localhost": kombu warns on every connection to a broker URL that names no host.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "project.broker:Transport"  # kombu's, with atomic message files
    _broker_dir = Path(env("CELERY_BROKER_DIR", default=str(RUN_DIR / "broker")))
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.2),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(RUN_DIR / "celerybeat-schedule")

# The beat entry a host project copies: it renews the shared token inside its renewal window. The
# checks (W005) and the health page read its interval from here.
BETTORSENSE_REFRESH_EVERY = env.float("BETTORSENSE_REFRESH_EVERY", default=10.0)
_SYNC_HOUR, _SYNC_MINUTE = env("BETTORSENSE_SYNC_AT_UTC", default="04:30").split(":")
CELERY_BEAT_SCHEDULE = {
    "bettorsense-refresh-token": {
        "task": "bettorsense.tasks.refresh_token",
        "schedule": BETTORSENSE_REFRESH_EVERY,
        # A tick that waited longer than its interval in the queue is stale: drop it.
        "options": {"expires": BETTORSENSE_REFRESH_EVERY},
    },
    # The daily sync into the local store, after Sportradar's nightly recompute (by about 04:00 UTC).
    "bettorsense-daily-sync": {
        "task": "bettorsense.tasks.sync_risk_profiles",
        "schedule": crontab(hour=_SYNC_HOUR, minute=_SYNC_MINUTE),
    },
    # The daily purge of rows past their retention settings (docs/responsible-gaming.md).
    "bettorsense-daily-purge": {
        "task": "bettorsense.tasks.purge_expired",
        "schedule": crontab(hour=5, minute=15),
    },
}

# --- Bettor Sense ---------------------------------------------------------------------------
BETTORSENSE = {
    "ENVIRONMENT": env("BETTORSENSE_ENVIRONMENT", default="sandbox"),
    "CLIENT_ID": env("BETTORSENSE_CLIENT_ID", default="demo-client"),
    "CLIENT_SECRET": env("BETTORSENSE_CLIENT_SECRET", default="demo-client-secret"),
    "BOOKMAKER_ID": env.int("BETTORSENSE_BOOKMAKER_ID", default=123),
    "SUB_BOOKMAKER_ID": env.int("BETTORSENSE_SUB_BOOKMAKER_ID", default=456),
    "TOKEN_URL": env("BETTORSENSE_TOKEN_URL", default=None),
    "AUDIENCE": env("BETTORSENSE_AUDIENCE", default=None),
    "API_URL": env("BETTORSENSE_API_URL", default=None),
    "REFRESH_MARGIN": env.float("BETTORSENSE_REFRESH_MARGIN", default=30.0),
    # Monitors send it as "Authorization: Bearer ..." to read the full health JSON; empty: staff only.
    "HEALTH_TOKEN": env("BETTORSENSE_HEALTH_TOKEN", default=""),
    "PROBE_ACCOUNT_ID": env("BETTORSENSE_PROBE_ACCOUNT_ID", default="player_1"),
    "METRICS_DEFAULT_REGISTRY": env.bool("BETTORSENSE_METRICS_DEFAULT_REGISTRY", default=False),
    "PROFILE_CACHE_ALIAS": "profiles",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # propagate: False, or a Celery worker prints each line twice (here and through its root handler).
        "bettorsense": {
            "handlers": ["console"],
            "level": env("BETTORSENSE_LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
    },
}
