"""``manage.py macula_secrets_check``: the secrets check, for deploy scripts.

Prints one line per declared secret (names only) and exits with status 1
when any is missing or unreadable, so ``ExecStartPre=`` or a CI step can
stop a deploy before the application starts without its secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.core.management.base import (
    BaseCommand,
    CommandError,
)

from ...checks import SETTING, check_required, is_entry_list


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    """Check MACULA_SECRETS_REQUIRED (or the secrets named on the command line)."""

    help = ("Check that the secrets the project declares in MACULA_SECRETS_REQUIRED exist "
            "and can be read. Values are never shown.")
    # This command is the check: running every system check first would stop
    # it at the first missing secret instead of listing them all.
    requires_system_checks: ClassVar[tuple[str, ...]] = ()

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("secrets", nargs="*", metavar="APP/KEY",
                            help=f"secrets to check instead of {SETTING}")

    def handle(self, *args: Any, **options: Any) -> None:
        entries = options["secrets"] or getattr(settings, SETTING, None)
        if not entries:
            raise CommandError(f"no secrets to check: set {SETTING} in the settings "
                               "or name them as APP/KEY")
        if not is_entry_list(entries):
            raise CommandError(f"{SETTING} must be a list of \"app/key\" names, "
                               f"not {type(entries).__name__}")
        findings = check_required(entries)
        for f in findings:
            if f.ok:
                self.stdout.write(f"ok: {f.secret}")
            else:
                self.stderr.write(f"{f.status}: {f.message}")
                if f.hint:
                    self.stderr.write(f"  hint: {f.hint}")
        bad = sum(not f.ok for f in findings)
        if bad:
            raise CommandError(f"{bad} of {len(findings)} secrets are missing or unreadable")
        self.stdout.write(f"{len(findings)} secrets present")
