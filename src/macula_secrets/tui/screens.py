"""Dialogs of the TUI: confirm, edit a value, a key's history, a long job with progress.

Each is a modal screen that returns its answer with ``dismiss``; the main
app decides what to do with it, so the dialogs hold no store logic. Errors
are shown by their message only: the API's messages name paths and
versions, never values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static, TextArea

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from ..records import VersionInfo

__all__ = ["ConfirmScreen", "EditResult", "EditScreen", "HistoryScreen", "JobScreen"]

Job = Callable[[Callable[[int, int], None]], list[str]]
"""A long job: called with ``progress(done, total)`` in a worker thread, returns report lines."""

DIALOG_CSS = """
    {name} {{ align: center middle; }}
    {name} > Vertical {{ width: 74; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1; }}
    {name} Horizontal {{ height: auto; }}
    {name} Button {{ margin: 0 1 0 0; }}
    {name} Label {{ width: 1fr; }}
"""


class ConfirmScreen(ModalScreen[str | None]):
    """A question with buttons; returns the chosen button's id, ``None`` on escape."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                for ident, label in self.choices:
                    yield Button(label, id=ident)
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True, slots=True, repr=False)
class EditResult:
    """What the edit dialog returns: where to write and the new value (left out of repr)."""

    app: str
    key: str
    value: str


class EditScreen(ModalScreen[EditResult | None]):
    """Add or edit a value: app and key names (fixed when editing) and a TextArea.

    The value is a TextArea so that values with newlines (PEM keys,
    certificates) are edited as they are; Ctrl+S saves, Escape cancels.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="EditScreen") + """
    EditScreen TextArea { height: 8; }
    EditScreen Input { height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, *, app: str = "", key: str = "", value: str = "",
                 fixed: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self._app, self._key, self._value, self.fixed = app, key, value, fixed

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            if not self.fixed:
                yield Input(self._app, placeholder="app", id="app")
                yield Input(self._key, placeholder="key", id="key")
            yield TextArea(self._value, id="value", soft_wrap=True, show_line_numbers=False)
            yield Label("", id="error")
            yield Static("ctrl+s save   esc cancel", classes="hint")
        self._value = ""  # the TextArea has it now

    def on_mount(self) -> None:
        if self.fixed:
            self.query_one("#value", TextArea).focus()
        elif self._app:
            self.query_one("#key", Input).focus()

    def action_save(self) -> None:
        app, key = self._app, self._key
        if not self.fixed:
            app = self.query_one("#app", Input).value.strip()
            key = self.query_one("#key", Input).value.strip()
        if not app or not key:
            self.query_one("#error", Label).update("an app and a key name are needed")
            return
        self.dismiss(EditResult(app, key, self.query_one("#value", TextArea).text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HistoryScreen(ModalScreen[int | None]):
    """The versions of one key; ``r`` returns the selected version to roll back to."""

    DEFAULT_CSS = DIALOG_CSS.format(name="HistoryScreen") + """
    HistoryScreen DataTable { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rollback", "Rollback to this version"),
        Binding("escape", "cancel", "Close"),
    ]

    def __init__(self, title: str, versions: list[VersionInfo]) -> None:
        super().__init__()
        self.title_text = title
        self.versions = versions

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static("r rollback to the selected version   esc close", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("version", "created (UTC)", "state", "")
        for v in self.versions:
            table.add_row(str(v.version), v.created.strftime("%Y-%m-%d %H:%M:%S"), v.state,
                          "current" if v.current else "", key=str(v.version))
        if self.versions:
            table.move_cursor(row=len(self.versions) - 1)
        table.focus()

    def action_rollback(self) -> None:
        table = self.query_one(DataTable)
        if not self.versions:
            return
        self.dismiss(self.versions[table.cursor_row].version)

    def action_cancel(self) -> None:
        self.dismiss(None)


class JobScreen(ModalScreen[bool]):
    """Run a long job (rotation, sync) in a worker thread with a progress bar.

    The UI stays live while it runs; when it ends the report lines (or the
    error's message) are shown and any key closes the dialog. Returns
    whether the job succeeded.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="JobScreen") + """
    JobScreen #report { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, job: Job) -> None:
        super().__init__()
        self.title_text = title
        self.job = job
        self.finished = False
        self.ok = False
        self.report: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield ProgressBar(id="progress", show_eta=False)
            yield Static("working…", id="report")

    def on_mount(self) -> None:
        self._run()

    @work(thread=True, exclusive=True)
    def _run(self) -> None:
        from ..errors import MaculaError

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self._progress, done, total)

        try:
            lines = self.job(progress)
            ok = True
        except MaculaError as exc:
            lines, ok = [f"error: {exc}"], False
        self.app.call_from_thread(self._done, lines, ok)

    def _progress(self, done: int, total: int) -> None:
        self.query_one(ProgressBar).update(total=max(total, 1), progress=done)

    def _done(self, lines: list[str], ok: bool) -> None:
        self.finished, self.ok, self.report = True, ok, lines
        bar = self.query_one(ProgressBar)
        if ok:
            bar.update(total=bar.total or 1, progress=bar.total or 1)
        self.query_one("#report", Static).update(
            Text("\n".join([*lines, "", "enter / esc: close"])))

    def action_close(self) -> None:
        if self.finished:
            self.dismiss(self.ok)
