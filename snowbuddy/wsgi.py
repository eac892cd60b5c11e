import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")

from django.core.wsgi import get_wsgi_application

from snowbuddy.startup import settings_or_exit

settings_or_exit()
application = get_wsgi_application()
