"""``macula-secrets tui``: start the terminal UI (the key-setup wizard first on a new home).

A thin shell: check that Textual is installed (the ``tui`` extra), keep
Textual's own logging off, run the wizard when the home has neither a store
nor a master key, open :class:`~macula_secrets.Secrets` (a passphrase is
asked on the terminal here, before the UI takes the screen) and run
:class:`~macula_secrets.tui.app.MaculaApp`. Textual draws on the alternate
screen, so nothing it showed stays in the terminal's scrollback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping

from . import exitcodes as X
from .output import CommandError, note

__all__ = ["needs_key_restore", "needs_setup", "quiet_textual", "run"]

_TEXTUAL_LOGGING = ("devtools", "debug")


def quiet_textual(environ: MutableMapping[str, str]) -> None:
    """Turn off Textual's log file and devtools before Textual is imported.

    ``TEXTUAL_LOG`` makes Textual append what it logs to a file, and the
    ``devtools`` feature sends it to a console; neither may see a screen
    that shows a revealed value.
    """
    environ.pop("TEXTUAL_LOG", None)
    features = [f for f in environ.get("TEXTUAL", "").split(",")
                if f.strip() and f.strip() not in _TEXTUAL_LOGGING]
    if features:
        environ["TEXTUAL"] = ",".join(features)
    else:
        environ.pop("TEXTUAL", None)


def needs_setup(home: str | None, environ: MutableMapping[str, str]) -> bool:
    """Whether the home has no store and no master key yet (then the wizard runs)."""
    from .. import _env
    from .._config import load_config
    from .._masterkey import SEALED_NAME

    if environ.get(_env.MACULA_SECRETS_MASTER_KEY):
        return False
    cfg = load_config(environ, home=home, source="none")
    return not any(os.path.exists(p) for p in (
        cfg.store_path, cfg.master_key_path, os.path.join(cfg.home, SEALED_NAME)))


def needs_key_restore(home: str | None, environ: MutableMapping[str, str]) -> bool:
    """Whether the store exists but its plain key file is gone (and nothing else holds it).

    Only for a store kept with the plain key file (no ``[master_key]``
    provider configured, no sealed key, no key in the environment): then
    the recovery shares are the way back, which the wizard offers.
    """
    from .. import _env
    from .._config import load_config
    from .._masterkey import SEALED_NAME

    if environ.get(_env.MACULA_SECRETS_MASTER_KEY) or environ.get(
            _env.MACULA_SECRETS_KEY_PROVIDER):
        return False
    cfg = load_config(environ, home=home, source="none")
    return (os.path.exists(cfg.store_path) and cfg.master_key.provider is None
            and not os.path.exists(cfg.master_key_path)
            and not os.path.exists(os.path.join(cfg.home, SEALED_NAME)))


def run(args: argparse.Namespace) -> int:
    quiet_textual(os.environ)
    try:
        import textual  # noqa: F401 - only the check that the extra is installed
    except ImportError:
        raise CommandError("the terminal UI needs textual, which is not installed",
                           hint="pip install 'macula-secrets[tui]'") from None
    if args.reveal_seconds <= 0:
        raise CommandError("--reveal-seconds must be more than 0")
    env = dict(os.environ)
    restore = needs_key_restore(args.home, env)
    if restore or needs_setup(args.home, env):
        from ..tui.wizard import WizardApp

        outcome = WizardApp(home=args.home, env=env, restore_only=restore).run()
        if outcome is None:
            note("no key was set up; nothing was changed")
            return X.OK
        for line in outcome.summary:
            note(line)
        env = outcome.env
    from ..client import Secrets
    from ..tui.app import MaculaApp
    from ..tui.model import Browser

    browser = Browser(Secrets.open(home=args.home, tenant=args.tenant, env=env))
    try:
        MaculaApp(browser, reveal_seconds=args.reveal_seconds).run()
    finally:
        browser.close()
    return X.OK
