from django.apps import AppConfig


class CacheDemoConfig(AppConfig):  # type: ignore[misc]
    name = "cachedemo"
    verbose_name = "FasterCache demo"
