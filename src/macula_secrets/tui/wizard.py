"""The first-run key-setup wizard of ``macula-secrets tui`` (a home with no store or key).

One screen: choose how the master key is made (generate, import an age
identity file, passphrase, TPM when one is present, restore from recovery
shares), fill in that choice's few fields, press Ctrl+S. The work is done
by :mod:`.keysetup` (``init``'s and ``key combine``'s own code) in a worker
thread; an error is shown and the choice can be changed and tried again.
Passphrases and shares are typed into password fields, never echoed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import MaculaError
from .base import SafeApp
from .keysetup import Method, Outcome, has_tpm, restore_from_shares, set_up

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from ..keys.shares import ShareSet

__all__ = ["WizardApp"]

_CHOICES: list[tuple[str, str]] = [
    ("generate", "Generate a new key (key file, mode 0600)"),
    ("import", "Import an age identity file"),
    ("passphrase", "Seal the key with a passphrase"),
    ("tpm", "Seal the key to this machine's TPM"),
    ("shares", "Restore the key from recovery shares"),
]


class WizardApp(SafeApp[Outcome | None]):
    """Set up a new home; returns the :class:`Outcome`, or ``None`` when the user quits."""

    TITLE = "macula-secrets: first start"
    CSS = """
    #methods { height: auto; max-height: 7; border: round $primary; }
    #forms { height: auto; border: round $secondary; padding: 0 1; }
    #forms > Vertical { height: auto; }
    #status { height: auto; padding: 0 1; }
    #forms Label { width: 1fr; }
    Input { height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Set up", priority=True),
        Binding("escape", "quit", "Quit"),
    ]

    def __init__(self, *, home: str | None, env: dict[str, str],
                 tpm: bool | None = None, restore_only: bool = False) -> None:
        super().__init__()
        self.home = home
        self.env = env
        self.tpm = has_tpm() if tpm is None else tpm
        # A store whose key file is lost: only restoring the key can open it.
        self.restore_only = restore_only
        self._shares: ShareSet | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        where = self.home or self.env.get("MACULA_SECRETS_HOME") or "the default home"
        if self.restore_only:
            intro = (f"The store in {where} has no master key file: restore the key from "
                     "recovery shares (or quit and restore it from a backup).")
        else:
            intro = f"No store or master key in {where} yet: choose how to set it up."
        yield Static(intro, id="intro")
        choices = [(i, label) for i, label in _CHOICES if (i != "tpm" or self.tpm)
                   and (i == "shares" or not self.restore_only)]
        methods = OptionList(*(Option(label, id=ident) for ident, label in choices),
                             id="methods")
        methods.border_title = "master key"
        yield methods
        with ContentSwitcher(initial=choices[0][0], id="forms"):
            with Vertical(id="generate"):
                yield Label("A new age identity (an existing one is reused) and a new "
                            "master key in a 0600 key file.")
            with Vertical(id="import"):
                yield Input(placeholder="path of the age identity file (keys.txt)",
                            id="import-path")
            with Vertical(id="passphrase"):
                yield Input(placeholder="passphrase", password=True, id="pass1")
                yield Input(placeholder="the same passphrase again", password=True,
                            id="pass2")
            with Vertical(id="tpm"):
                yield Input(placeholder="PCRs to bind to, e.g. sha256:7 (empty: none)",
                            id="pcrs")
            with Vertical(id="shares"):
                yield Input(placeholder="a share (enter adds it; input is hidden)",
                            password=True, id="share")
                yield Label("no share yet", id="share-count")
        yield Static("ctrl+s: set up   esc: quit without changes", id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#methods", OptionList).focus()
        self.query_one("#methods", OptionList).highlighted = 0

    @property
    def method(self) -> str:
        return self.query_one("#forms", ContentSwitcher).current or "generate"

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self.query_one("#forms", ContentSwitcher).current = event.option.id

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        form = self.query_one(f"#{event.option.id}", Vertical)
        inputs = form.query(Input)
        if inputs:
            inputs.first().focus()
        else:
            self.action_submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "share":
            self._add_share(event.input)
        elif event.input.id == "pass1":
            self.query_one("#pass2", Input).focus()
        else:
            self.action_submit()

    def _add_share(self, field: Input) -> None:
        from ..keys.shares import ShareSet

        text, field.value = field.value, ""
        if not text.strip():
            return
        if self._shares is None:
            self._shares = ShareSet()
        shares = self._shares
        try:
            share = shares.add(text, source=f"share {shares.count + 1}")
        except MaculaError as exc:
            self._status(f"{exc}", error=True)
            return
        self.query_one("#share-count", Label).update(
            f"{shares.count} of {share.threshold} shares of split {share.split_id} in")
        if shares.is_complete():
            self.action_submit()
        else:
            self._status("share accepted: type the next one")

    def _status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#status", Static).update(("error: " if error else "") + text)

    def action_submit(self) -> None:
        """Check the chosen form's fields, then set up in a worker thread."""
        if self.busy:
            return
        method = self.method
        if method == "shares":
            if self._shares is None or not self._shares.is_complete():
                self._status("not enough shares yet", error=True)
                return
            self.busy = True
            self._status("restoring…")
            self._restore(self._shares)
            return
        passphrase = None
        if method == "passphrase":
            first = self.query_one("#pass1", Input).value
            if not first:
                self._status("an empty passphrase cannot seal the key", error=True)
                return
            if self.query_one("#pass2", Input).value != first:
                self._status("the passphrases differ", error=True)
                return
            passphrase = first
        path = self.query_one("#import-path", Input).value.strip() or None
        if method == "import" and path is None:
            self._status("give the path of an age identity file", error=True)
            return
        self.busy = True
        self._status("setting up…")
        chosen: Method = ("import" if method == "import" else "passphrase"
                          if method == "passphrase" else "tpm" if method == "tpm"
                          else "generate")
        self._set_up(chosen, path, passphrase, self.query_one("#pcrs", Input).value.strip())

    @work(thread=True, exclusive=True)
    def _set_up(self, method: Method, path: str | None, passphrase: str | None,
                pcrs: str) -> None:
        try:
            outcome = set_up(self.home, self.env, method, import_path=path,
                             passphrase=passphrase, pcrs=pcrs or None)
        except (MaculaError, OSError) as exc:
            self.call_from_thread(self._failed, str(exc))
            return
        self.call_from_thread(self.exit, outcome)

    @work(thread=True, exclusive=True)
    def _restore(self, shares: ShareSet) -> None:
        try:
            outcome = restore_from_shares(self.home, self.env, shares)
        except (MaculaError, OSError) as exc:
            self.call_from_thread(self._failed, str(exc))
            return
        self.call_from_thread(self.exit, outcome)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._shares = None
        self.query_one("#share-count", Label).update("no share yet")
        self._status(message, error=True)
