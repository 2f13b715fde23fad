"""ASGI entry point of the sample project."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sampleproj.settings")
application = get_asgi_application()
