"""Settings for tests/django: the sample project's own settings, with test-only overrides."""

from __future__ import annotations

from typing import Any


def build_settings(cache_dir: str, extra_apps: list[str]) -> dict[str, Any]:
    import sampleproj.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["INSTALLED_APPS"] = [*values["INSTALLED_APPS"], *extra_apps]
    values["DATABASES"] = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    }
    caches = {alias: dict(conf) for alias, conf in values["CACHES"].items()}
    caches["default"]["LOCATION"] = cache_dir
    values["CACHES"] = caches
    values["PASSWORD_HASHERS"] = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    values["DEBUG"] = False
    values["ALLOWED_HOSTS"] = ["*"]
    return values
