"""The TUI's lease view: the leases Vault holds for dynamic credentials, and revoking one.

What ``macula-secrets leases list --long`` prints, live: each lease's short
id, the TTL left (counted down here every second from the expiry Vault
gave, with no call to Vault), the expiry, whether it is renewable and its
last renewal. ``r`` asks Vault again, ``x`` revokes the selected lease
after a confirmation. Calls to Vault run in a worker thread, so a slow or
unreachable Vault never freezes the UI; its errors are shown by message
(they name paths, never a credential). Only short ids are shown: a whole
lease id is a handle that lets a suitable token revoke the lease.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from ..leaseview import ttl_text
from .screens import DIALOG_CSS, ConfirmScreen

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from ..leaseview import LeaseInfo

__all__ = ["LeasesScreen"]

_COLUMNS = ("lease", "ttl", "expires (UTC)", "renew", "renewed (UTC)")


class LeasesScreen(ModalScreen[None]):
    """Leases under a prefix, loaded by ``load`` and revoked by ``revoke`` (the Browser's)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="LeasesScreen") + """
    LeasesScreen DataTable { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "revoke", "Revoke"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, title: str, load: Callable[[], list[LeaseInfo]],
                 revoke: Callable[[str], None], *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__()
        self.title_text = title
        self.load = load
        self.revoke = revoke
        self.now = now
        self.leases: list[LeaseInfo] = []
        self.loaded = False
        """Whether a load has finished (with leases or an error): tests wait on it."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static("asking vault…", id="status")
            yield Static("x revoke   r refresh   esc close", classes="hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*_COLUMNS)
        self.set_interval(1.0, self._count_down)
        self._fetch()

    # -- loading ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="vault")
    def _fetch(self) -> None:
        from ..errors import MaculaError

        try:
            infos = self.load()
        except MaculaError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._show, infos)

    def _show(self, infos: list[LeaseInfo]) -> None:
        self.leases, self.loaded = infos, True
        table = self.query_one(DataTable)
        table.clear()
        for info in infos:
            table.add_row(info.short_id, self._ttl(info), _when(info.expires_at),
                          "yes" if info.renewable else "no", _when(info.last_renewal),
                          key=info.lease_id)
        self.query_one("#status", Static).update(
            f"{len(infos)} lease{'s' if len(infos) != 1 else ''}" if infos else "no leases")
        table.focus()

    def _failed(self, message: str) -> None:
        self.loaded = True
        self.query_one("#status", Static).update(f"error: {message}")

    def _count_down(self) -> None:
        """Redraw the TTL column from each expiry: a live countdown without asking Vault."""
        table = self.query_one(DataTable)
        column = table.ordered_columns[1].key
        for info in self.leases:
            if info.lease_id in table.rows:
                table.update_cell(info.lease_id, column, self._ttl(info))

    def _ttl(self, info: LeaseInfo) -> str:
        if info.expires_at is None:
            return "-"
        left = int((info.expires_at - self.now()).total_seconds())
        return "expired" if left <= 0 else ttl_text(left)

    # -- actions ---------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.loaded = False
        self.query_one("#status", Static).update("asking vault…")
        self._fetch()

    def action_revoke(self) -> None:
        table = self.query_one(DataTable)
        if not self.leases or not 0 <= table.cursor_row < len(self.leases):
            return
        info = self.leases[table.cursor_row]

        def confirmed(answer: str | None) -> None:
            if answer == "revoke":
                self.loaded = False
                self._revoke(info.lease_id, info.short_id)

        self.app.push_screen(ConfirmScreen(
            f"Revoke lease {info.short_id}? Its credential stops working now; the "
            "process holding it gets a new one when it next renews.",
            [("revoke", "Revoke")]), confirmed)

    @work(thread=True, exclusive=True, group="vault")
    def _revoke(self, lease_id: str, short_id: str) -> None:
        from ..errors import MaculaError

        try:
            self.revoke(lease_id)
            infos = self.load()
        except MaculaError as exc:
            self.app.call_from_thread(self._failed, f"cannot revoke {short_id}: {exc}")
            return
        self.app.call_from_thread(self._show, infos)
        self.app.call_from_thread(self.app.notify, f"revoked {short_id}")

    def action_close(self) -> None:
        self.dismiss(None)


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%m-%d %H:%M:%S")
