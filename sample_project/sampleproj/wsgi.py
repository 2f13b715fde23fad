"""WSGI entry point of the sample project."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sampleproj.settings")
application = get_wsgi_application()
