"""The Django app that provides ``python manage.py faster_cache``."""

from django.apps import AppConfig


class FasterCacheConfig(AppConfig):  # type: ignore[misc]
    name = "faster_backend.integrations.django"
    label = "faster_cache"
    verbose_name = "faster-backend cache"
