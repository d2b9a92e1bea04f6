"""The main screen's panes: the detail of the selected key and the live audit tail.

Textual widgets only; what they show comes from :mod:`.model`. The detail
pane is the one place a revealed value is drawn, and it forgets the value
when it is masked again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from .model import KeyInfo

__all__ = ["MASK", "AuditPane", "DetailPane", "detail_text"]

MASK: Final = "•" * 12
"""What a masked value looks like: always the same length, so the mask tells nothing."""


class DetailPane(Static):
    """The selected key: path, version, source, staleness and the value (masked or not)."""

    DEFAULT_CSS = """
    DetailPane { width: 1fr; height: 1fr; padding: 0 1; border: round $primary; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.path: tuple[str, str, str] | None = None
        self.info: KeyInfo | None = None
        self._value: str | None = None
        self._note = "select a key"

    @property
    def revealed(self) -> bool:
        """Whether a value is on screen now."""
        return self._value is not None

    def show_key(self, path: tuple[str, str, str], info: KeyInfo | None) -> None:
        """Show a key, masked (the value it showed before is dropped)."""
        self.path, self.info, self._value = path, info, None
        self._draw()

    def show_note(self, note: str) -> None:
        """Show a line of text instead of a key (a tenant or app is selected)."""
        self.path, self.info, self._value, self._note = None, None, None, note
        self._draw()

    def reveal(self, value: str) -> None:
        """Show the value of the key on screen until :meth:`mask`."""
        self._value = value
        self._draw()

    def mask(self) -> None:
        """Hide the value again and drop the reference to it."""
        if self._value is not None:
            self._value = None
            self._draw()

    def _draw(self) -> None:
        if self.path is None:
            self.border_title = None
            self.update(Text(self._note, style="dim"))
            return
        self.border_title = "/".join(self.path)
        self.update(detail_text(self.info, self._value))


def detail_text(info: KeyInfo | None, value: str | None) -> Text:
    """What the detail pane says about a key: version, state, source, staleness, value.

    ``value`` is ``None`` while masked; a value is added as text, never as
    markup, so one with [brackets] is shown as it is.
    """
    text = Text()
    if info is None:
        text.append("no such key (it may have been removed)\n", style="dim")
        return text
    state = "deleted (u: undelete)" if info.deleted else "live"
    text.append(f"version  {info.version}  {state}\n")
    text.append(f"source   {info.source}")
    text.append("  STALE: vault unreachable\n" if info.stale else "\n",
                style="bold red" if info.stale else "")
    text.append("value    ")
    if info.deleted:
        text.append("(deleted)", style="dim")
    elif value is None:
        text.append(MASK + "  (v: reveal)", style="dim")
    else:
        text.append("\n")
        text.append(value, style="bold")
    return text


class AuditPane(Static):
    """The last lines of the audit log; the app refreshes it when the log grows."""

    DEFAULT_CSS = """
    AuditPane { height: 8; padding: 0 1; border: round $secondary; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.border_title = "audit log"
        self.lines: list[str] = []

    def show(self, lines: list[str]) -> None:
        """Show these lines (the newest last)."""
        self.lines = lines
        self.update(Text("\n".join(lines) if lines else "(empty)", no_wrap=True,
                         overflow="ellipsis"))
