"""Django integration: the ``FasterCache`` backend and the ``faster_cache`` management command.

``CACHES = {"default": {"BACKEND": "faster_backend.integrations.django.FasterCache",
"LOCATION": "/var/lib/myapp/cache"}}``; add ``"faster_backend.integrations.django"`` to
INSTALLED_APPS for ``python manage.py faster_cache``. See docs/django.md.
"""

from faster_backend.integrations.django.backend import FasterCache
from faster_backend.integrations.django.locks import FasterLock, LockError, LockNotOwnedError

__all__ = ["FasterCache", "FasterLock", "LockError", "LockNotOwnedError"]
