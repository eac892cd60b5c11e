import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")

from django.core.wsgi import get_wsgi_application

from snowbuddy.startup import WSGI_EXIT_CODE, settings_or_exit

# Under gunicorn without snowbuddy.gunicorn_conf this runs in each worker: exit so that the
# master stops rather than booting worker after worker.
settings_or_exit(WSGI_EXIT_CODE)
application = get_wsgi_application()
