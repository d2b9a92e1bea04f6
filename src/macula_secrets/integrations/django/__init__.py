"""Django integration: declare the secrets a project needs and check them at startup.

Shell layer (extra ``django``). Add ``"macula_secrets.integrations.django"``
to ``INSTALLED_APPS`` and list the secrets in ``MACULA_SECRETS_REQUIRED``::

    from macula_secrets.config import secret

    SECRET_KEY = secret("console", "django_secret_key")
    MACULA_SECRETS_REQUIRED = ["console/django_secret_key", "console/db_password"]

Django's system checks (``manage.py check``, ``runserver``, ``migrate``)
then report every missing or unreadable one, each by name, and
``manage.py macula_secrets_check`` does the same for deploy scripts. Reading
values in ``settings.py`` needs no Django code at all: that is
:func:`macula_secrets.config.secret`. :func:`check_required` is the check
without Django, for other frameworks' start-up hooks.

.. versionadded:: 0.1
"""

from __future__ import annotations

from .checks import Finding, check_required

__all__ = ["Finding", "check_required"]
