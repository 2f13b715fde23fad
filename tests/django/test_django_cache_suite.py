"""The acceptance test: Django 5.2's own BaseCacheTests against FasterCache (all seven aliases).

tests/cache of Django's sdist is fetched with pip at test time (see django_suite_fetch.py) and
imported as the package ``cache``.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from django.test import TestCase, override_settings
from django_suite_fetch import SUITE_ERROR

BACKEND = "faster_backend.integrations.django.FasterCache"
LOCATION = tempfile.mkdtemp(prefix="faster-django-suite-")

if SUITE_ERROR:

    def test_django_cache_suite_available() -> None:
        pytest.fail("Django's cache test suite could not be fetched: " + SUITE_ERROR[0])

else:
    import cache.tests as django_cache_tests

    @override_settings(
        CACHES=django_cache_tests.caches_setting_for_tests(BACKEND=BACKEND, LOCATION=LOCATION)
    )
    class FasterCacheDjangoSuiteTests(django_cache_tests.BaseCacheTests, TestCase):  # type: ignore[misc]
        """Every test of BaseCacheTests, culling included."""

        @classmethod
        def tearDownClass(cls) -> Any:
            super().tearDownClass()
            shutil.rmtree(LOCATION, ignore_errors=True)
