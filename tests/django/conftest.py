"""Django settings for tests/django: configured when this folder's tests are collected.

Other parts of the suite run in the same pytest session without Django settings, so nothing here
is global: pytest calls this ``pytest_configure`` only once this conftest is loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SAMPLE_PROJECT = HERE.parent.parent / "sample_project"


def pytest_configure(config: pytest.Config) -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    from django_suite_fetch import SUITE_ERROR, fetch_cache_tests

    apps = []
    try:
        suite_dir = fetch_cache_tests()
    except Exception as exc:  # reported by the suite's test, not at collection
        SUITE_ERROR.append(f"{type(exc).__name__}: {exc}")
    else:
        sys.path.insert(0, str(suite_dir))
        apps.append("cache")
    if str(SAMPLE_PROJECT) not in sys.path:
        sys.path.insert(0, str(SAMPLE_PROJECT))

    from django_test_settings import build_settings
    from django_tmpdirs import make_tmpdir

    settings.configure(
        **build_settings(cache_dir=make_tmpdir("faster-django-cache-"), extra_apps=apps)
    )
    django.setup()


def pytest_unconfigure(config: pytest.Config) -> None:
    from django_tmpdirs import cleanup

    cleanup()
