"""The acceptance test: Django 5.2's own BaseCacheTests against FasterCache (all seven aliases).

tests/cache of Django's sdist is fetched with pip at test time (see django_suite_fetch.py) and
imported as the package ``cache``. The same suite also runs against the redis:// mode, on a real
redis-server and on `faster-backend serve`; there, like Django's RedisCache, FasterCache does
not cull, so the two cull aliases are left out and their three tests skip.
"""

from __future__ import annotations

import unittest

import pytest
from django.test import TestCase, override_settings
from django_servers import resp_server, unavailable
from django_suite_fetch import SUITE_ERROR
from django_tmpdirs import make_tmpdir

BACKEND = "faster_backend.integrations.django.FasterCache"
LOCATION = make_tmpdir("faster-django-suite-")

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

        def skipTest(self, reason: str) -> None:
            # The suite skips the cull tests for backends that cannot cull: not us.
            self.fail(f"the embedded FasterCache must run every test; skipped: {reason}")

    def test_the_suite_is_complete() -> None:
        names = [n for n in dir(django_cache_tests.BaseCacheTests) if n.startswith("test_")]
        assert len(names) == 54, names  # Django 5.2's BaseCacheTests
        assert {"test_cull", "test_zero_cull", "test_cull_delete_when_store_empty"} <= set(names)

    class _RespSuite(django_cache_tests.BaseCacheTests, TestCase):  # type: ignore[misc]
        """BaseCacheTests with LOCATION pointing at a RESP server started for the class."""

        __test__ = False
        peer = ""

        def skipTest(self, reason: str) -> None:
            super().skipTest(f"redis:// mode does not cull, like Django's RedisCache ({reason})")

        @classmethod
        def setUpClass(cls) -> None:
            reason = unavailable(cls.peer)
            if reason:
                raise unittest.SkipTest(reason)
            cls._server = resp_server(cls.peer)
            url = cls._server.__enter__()
            cls._override = override_settings(
                CACHES=django_cache_tests.caches_setting_for_tests(
                    BACKEND=BACKEND, LOCATION=url, exclude={"cull", "zero_cull"}
                )
            )
            cls._override.enable()
            try:
                super().setUpClass()
            except BaseException:
                cls._override.disable()
                cls._server.__exit__(None, None, None)
                raise

        @classmethod
        def tearDownClass(cls) -> None:
            try:
                super().tearDownClass()
            finally:
                cls._override.disable()
                cls._server.__exit__(None, None, None)

    class FasterCacheOverRedisServerSuiteTests(_RespSuite):
        __test__ = True
        peer = "redis-server"

    class FasterCacheOverFasterServeSuiteTests(_RespSuite):
        __test__ = True
        peer = "faster-backend"
