"""Settings of the example project: SECRET_KEY and DATABASES come from macula-secrets.

Django reads its settings once, when the process starts. So the values read
here with :func:`~macula_secrets.config.secret` are fixed for the life of the
process: after ``website/django_secret_key`` or ``website/database_url``
changes, restart the server (a rolling restart of gunicorn workers, a
``systemctl restart``) to use the new value. Secrets a view reads per request
(``website/webhook_key``, see views.py) rotate without a restart.

A missing secret read here stops the process at startup with an error naming
the app and the key. Secrets read later, in views, are declared in
``MACULA_SECRETS_REQUIRED`` so that the system check of the
``macula_secrets.integrations.django`` app reports them at startup too
(``manage.py check``, ``runserver``, ``manage.py macula_secrets_check``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from macula_secrets.config import secret

APP = "website"
"""The macula-secrets app this project reads its secrets from."""


def database_from_url(url: str) -> dict[str, object]:
    """A ``DATABASES`` entry from ``sqlite:///path`` or ``postgresql://user:pw@host:port/db``.

    The error for another scheme names the scheme only: the URL holds a password.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute/path.db
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:]}
    if parts.scheme in ("postgres", "postgresql"):
        return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path[1:],
                "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    raise ImproperlyConfigured(f"{APP}/database_url: unsupported scheme {parts.scheme!r} "
                               "(use sqlite or postgresql)")


# Read once at startup: a new value needs a restart.
SECRET_KEY = secret(APP, "django_secret_key")
DATABASES = {"default": database_from_url(secret(APP, "database_url"))}

# Read per request by views.py: checked at startup, rotated live.
MACULA_SECRETS_REQUIRED = [f"{APP}/webhook_key"]

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "macula_secrets.integrations.django",   # the startup check and macula_secrets_check
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "website.urls"
WSGI_APPLICATION = "website.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
