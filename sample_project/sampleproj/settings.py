"""Settings of the sample project: FasterCache as the default cache, sessions in the cache.

Environment overrides: FASTER_CACHE_LOCATION (a data directory, ':memory:' or redis://...),
DJANGO_SECRET_KEY, DJANGO_DEBUG (1/0), DJANGO_ALLOWED_HOSTS (comma separated).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SAMPLE_PROJECT_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sample-project-not-secret-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "faster_backend.integrations.django",  # python manage.py faster_cache ...
    "cachedemo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sampleproj.urls"
WSGI_APPLICATION = "sampleproj.wsgi.application"

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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "db.sqlite3",
    }
}

# The one settings change a Django site makes to use faster-backend.
CACHES = {
    "default": {
        "BACKEND": "faster_backend.integrations.django.FasterCache",
        "LOCATION": os.environ.get("FASTER_CACHE_LOCATION", str(VAR_DIR / "cache")),
        "TIMEOUT": 300,
        "OPTIONS": {
            "MAX_ENTRIES": 100_000,
            "CULL_FREQUENCY": 3,
            "memory_size": "64MiB",  # older log pages go to LOCATION/log on disk
            "max_disk_size": "1GiB",  # cache mode: beyond this the oldest part is dropped
        },
    }
}

SESSION_ENGINE = "django.contrib.sessions.backends.cache"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"faster_backend": {"handlers": ["console"], "level": "WARNING"}},
}
