"""The Django app: registers the secrets check when Django starts."""

from __future__ import annotations

from django.apps import AppConfig


class MaculaSecretsConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """``INSTALLED_APPS`` entry ``"macula_secrets.integrations.django"``; no models."""

    name = "macula_secrets.integrations.django"
    label = "macula_secrets"
    verbose_name = "macula-secrets"

    def ready(self) -> None:
        """Register :func:`~.checks.check_secrets` under the ``macula_secrets`` tag."""
        from django.core import checks

        from .checks import TAG, check_secrets

        checks.register(check_secrets, TAG)
