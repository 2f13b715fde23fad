from django.apps import AppConfig


class CacheDemoConfig(AppConfig):
    name = "cachedemo"
    verbose_name = "FasterCache demo"
