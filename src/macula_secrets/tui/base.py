"""The one base class of the TUI's apps: Textual's ``App`` minus its crash report's locals.

Textual prints an unexpected exception's traceback with ``show_locals=True``
after leaving the alternate screen, so it lands in the terminal's
scrollback. A local there may hold a revealed value, a passphrase typed in
the wizard or a recovery share. The apps here print only the exception's
type instead.
"""

from __future__ import annotations

from typing import TypeVar

from rich.text import Text
from textual.app import App

__all__ = ["SafeApp"]

ReturnType = TypeVar("ReturnType")


class SafeApp(App[ReturnType]):
    """An ``App`` whose crash report names the exception's type and nothing else."""

    ENABLE_COMMAND_PALETTE = False

    def _fatal_error(self) -> None:
        # Overrides Textual's private hook: the public alternative (catching
        # everything in every handler) would still miss errors inside Textual.
        self.bell()
        error = self._exception
        name = type(error).__name__ if error is not None else "error"
        self._exit_renderables.append(Text(
            f"macula: error: the tui stopped on an unexpected {name} (no details are "
            "printed, so no secret can reach the terminal)"))
        self._close_messages_no_wait()
