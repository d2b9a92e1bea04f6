"""The main screen of ``macula-secrets tui``: a tenants > apps > keys tree, the selected
key's detail and a live audit tail, with one key binding per action.

A thin shell like the CLI: every store operation is a call on
:class:`~macula_secrets.tui.model.Browser`; long ones (sync, master key
rotation) run in a worker thread behind :class:`~.screens.JobScreen`.
Changes made by other processes arrive through :meth:`Secrets.subscribe`
(one subscription per app shown) and a poll of the store's change counter
(for apps and tenants that are new); either redraws the tree and the detail.

A revealed value lives only in the detail pane, and only until the reveal
timeout, a move of the selection, or any redraw of that key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Tree

from ..errors import MaculaError
from .base import SafeApp
from .model import Browser, sync_lines
from .screens import ConfirmScreen, EditResult, EditScreen, HistoryScreen, JobScreen
from .widgets import AuditPane, DetailPane

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.app import ComposeResult
    from textual.timer import Timer
    from textual.widgets.tree import TreeNode

    from .._feed import Subscription

__all__ = ["DEFAULT_REVEAL_SECONDS", "MaculaApp", "NodeRef"]

DEFAULT_REVEAL_SECONDS = 15.0
AUDIT_LINES = 6
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What a tree node stands for: a tenant, an app of it, or a key of that app."""

    tenant: str
    app: str | None = None
    key: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(p for p in (self.tenant, self.app, self.key) if p is not None)


class StoreChanged(Message):
    """Posted (from the change-feed thread) when a subscribed app changed."""


class MaculaApp(SafeApp[None]):
    """Browse and change the store of one node; see docs/tui.md."""

    TITLE = "macula-secrets"
    CSS = """
    #body { height: 1fr; }
    #tree { width: 30; border: round $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "reveal", "Reveal"),
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("u", "undelete", "Undel", show=False),  # named by the delete notice
        Binding("h", "history", "History"),
        Binding("s", "sync", "Sync"),
        Binding("R", "rotate", "Rotate"),
        Binding("l", "leases", "Leases"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, browser: Browser, *, reveal_seconds: float = DEFAULT_REVEAL_SECONDS,
                 tenant: str | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.browser = browser
        self.reveal_seconds = reveal_seconds
        self.poll_seconds = poll_seconds
        self.start_tenant = tenant or browser.secrets.tenant
        self._mask_timer: Timer | None = None
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._last_change = -1
        self._audit_stamp: tuple[int, int] | None = None
        self._pending: NodeRef | None = None  # where _select will put the cursor

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            tree: Tree[NodeRef] = Tree("tenants", id="tree")
            tree.show_root = False
            tree.border_title = "macula-secrets"
            yield tree
            yield DetailPane(id="detail")
        yield AuditPane(id="audit")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        tree = self.key_tree
        start: TreeNode[NodeRef] | None = None
        for tenant in self.browser.tenants():
            node = tree.root.add(tenant, data=NodeRef(tenant))
            if tenant == self.start_tenant:
                self._fill(node)
                node.expand()
                start = node
        tree.root.expand()
        tree.focus()
        if start is not None:
            # Node lines exist after the next refresh: move the cursor then.
            self.call_after_refresh(tree.move_cursor, start)
        self._last_change = self.browser.secrets.store.last_change()
        self._poll()
        self.set_interval(self.poll_seconds, self._poll)

    # -- helpers ---------------------------------------------------------------------

    @property
    def key_tree(self) -> Tree[NodeRef]:
        return self.query_one("#tree", Tree)

    @property
    def detail(self) -> DetailPane:
        return self.query_one("#detail", DetailPane)

    @property
    def selected(self) -> NodeRef | None:
        """What the tree's cursor is on."""
        node = self.key_tree.cursor_node
        return None if node is None else node.data

    def _selected_key(self) -> tuple[NodeRef, str, str, str] | None:
        """The selected key as ``(ref, tenant, app, key)``; ``None`` (and a notice) if none."""
        ref = self.selected
        if ref is None or ref.app is None or ref.key is None:
            self.notify("select a key first", severity="warning")
            return None
        return ref, ref.tenant, ref.app, ref.key

    def _try(self, what: str, call: Callable[[], object]) -> bool:
        """Run ``call``; show a failure as a notification (the API's messages hold no value)."""
        try:
            call()
        except MaculaError as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=8)
            return False
        return True

    # -- the tree --------------------------------------------------------------------

    def _fill(self, node: TreeNode[NodeRef]) -> None:
        """(Re)load the children of a tenant or app node from the store."""
        ref = node.data
        if ref is None or ref.key is not None:
            return
        node.remove_children()
        if ref.app is None:
            for app in self.browser.apps(ref.tenant):
                node.add(app, data=NodeRef(ref.tenant, app))
            return
        for row in self.browser.keys(ref.tenant, ref.app):
            label = f"{row.name} (deleted)" if row.deleted else row.name
            node.add_leaf(label, data=NodeRef(ref.tenant, ref.app, row.name))
        self._subscribe(ref.tenant, ref.app)

    def _subscribe(self, tenant: str, app: str) -> None:
        if (tenant, app) in self._subscriptions:
            return

        def changed(_app: str, _key: str, _version: int) -> None:
            self.post_message(StoreChanged())  # thread-safe; handled on the UI's thread

        self._subscriptions[tenant, app] = self.browser.subscribe(tenant, app, changed)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        # Only a node never filled: expand() also posts this event, and a
        # refill here would drop the open state of the nodes below.
        ref = event.node.data
        if ref is not None and ref.key is None and not event.node.children:
            self._fill(event.node)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        self._show(event.node.data)

    def _show(self, ref: NodeRef | None) -> None:
        """Show the detail of ``ref``; a value on screen is masked (the selection moved)."""
        self._cancel_mask_timer()
        if ref is None:
            self.detail.show_note("select a key")
        elif ref.key is None or ref.app is None:
            what = "an app" if ref.app is None else "a key"
            self.detail.show_note(f"{'/'.join(ref.path)}: enter expands, select {what}")
        else:
            key = ref.key
            app = ref.app
            info = None
            try:
                info = self.browser.info(ref.tenant, app, key)
            except MaculaError as exc:
                self.notify(f"cannot read {app}/{key}: {exc}", severity="error")
            self.detail.show_key((ref.tenant, app, key), info)

    def reload(self) -> None:
        """Reload every open node and the selected key (after a change by anyone)."""
        tree = self.key_tree
        keep = self._pending if self._pending is not None else self.selected
        expanded = {n.data.path for n in _walk(tree.root) if n.is_expanded and n.data}
        present = {n.data.tenant for n in tree.root.children if n.data}
        for tenant in self.browser.tenants():
            if tenant not in present:
                tree.root.add(tenant, data=NodeRef(tenant))
        for tenant_node in list(tree.root.children):
            if tenant_node.data is None or tenant_node.data.path not in expanded:
                continue
            self._fill(tenant_node)
            for app_node in list(tenant_node.children):
                if app_node.data is not None and app_node.data.path in expanded:
                    self._fill(app_node)
                    app_node.expand()
        self._select(keep)

    def _select(self, ref: NodeRef | None) -> None:
        """Put the cursor on ``ref`` (when it is in the tree) and show it.

        Deferred to after the next refresh: the tree numbers its lines then,
        and a node added just now has no line to move to before.
        """
        self._pending = ref

        def move() -> None:
            if self._pending != ref:
                return  # a later _select supersedes this one
            self._pending = None
            tree = self.key_tree
            if tree.last_line < 0:  # reading it numbers the lines of new nodes
                return
            for node in _walk(tree.root):
                if ref is not None and node.data == ref:
                    tree.move_cursor(node)
                    break
            self._show(self.selected)

        self.call_after_refresh(move)

    def on_store_changed(self, _message: StoreChanged) -> None:
        self._last_change = self.browser.secrets.store.last_change()
        self.reload()

    def _poll(self) -> None:
        """New apps or tenants (no subscription sees them yet), and the audit log's growth."""
        seq = self.browser.secrets.store.last_change()
        if seq != self._last_change:
            self._last_change = seq
            self.reload()
        self._refresh_audit()

    def _refresh_audit(self) -> None:
        path = self.browser.audit_path
        try:
            st = os.stat(path) if path else None
        except FileNotFoundError:
            st = None
        stamp = (st.st_size, st.st_mtime_ns) if st else (0, 0)
        if stamp != self._audit_stamp:
            self._audit_stamp = stamp
            self.query_one("#audit", AuditPane).show(self.browser.audit_lines(AUDIT_LINES))

    # -- reveal ----------------------------------------------------------------------

    def action_reveal(self) -> None:
        """Show the selected value (audited) until the timeout or a move; again: mask."""
        if self.detail.revealed:
            self._mask()
            return
        picked = self._selected_key()
        if picked is None:
            return
        _, tenant, app, key = picked
        try:
            value = self.browser.reveal(tenant, app, key)
        except MaculaError as exc:
            self.notify(f"cannot reveal {app}/{key}: {exc}", severity="error")
            return
        self.detail.reveal(value)
        self._mask_timer = self.set_timer(self.reveal_seconds, self._mask)

    def _mask(self) -> None:
        self._cancel_mask_timer()
        self.detail.mask()

    def _cancel_mask_timer(self) -> None:
        if self._mask_timer is not None:
            self._mask_timer.stop()
            self._mask_timer = None

    # -- changes ---------------------------------------------------------------------

    def action_add(self) -> None:
        """Add a key: to the selected app, or name the app."""
        ref = self.selected
        tenant = ref.tenant if ref is not None else self.start_tenant
        app = ref.app if ref is not None and ref.app is not None else ""
        self._mask()

        def done(result: EditResult | None) -> None:
            if result is not None:
                self._write(tenant, result)

        self.push_screen(EditScreen(f"new key in tenant {tenant}", app=app), done)

    def action_edit(self) -> None:
        """Edit the selected value in a multi-line editor (its read is audited)."""
        picked = self._selected_key()
        if picked is None:
            return
        _, tenant, app, key = picked
        self._mask()
        try:
            value = self.browser.reveal(tenant, app, key)
        except MaculaError as exc:
            self.notify(f"cannot edit {app}/{key}: {exc}", severity="error")
            return

        def done(result: EditResult | None) -> None:
            if result is not None:
                self._write(tenant, result)

        self.push_screen(EditScreen(f"edit {tenant}/{app}/{key}", app=app, key=key,
                                    value=value, fixed=True), done)

    def _write(self, tenant: str, result: EditResult) -> None:
        versions: list[int] = []
        if self._try(f"cannot write {result.app}/{result.key}",
                     lambda: versions.append(self.browser.put(tenant, result.app, result.key,
                                                              result.value))):
            self.notify(f"{result.app}/{result.key}: version {versions[0]} written")
            self._select_after_write(NodeRef(tenant, result.app, result.key))

    def _select_after_write(self, ref: NodeRef) -> None:
        """Open the tenant and app of ``ref`` and put the cursor on it."""
        tree = self.key_tree
        for tenant_node in tree.root.children:
            if tenant_node.data is None or tenant_node.data.tenant != ref.tenant:
                continue
            self._fill(tenant_node)
            tenant_node.expand()
            for app_node in tenant_node.children:
                if app_node.data is not None and app_node.data.app == ref.app:
                    self._fill(app_node)
                    app_node.expand()
        self._last_change = self.browser.secrets.store.last_change()
        self.reload()
        self._select(ref)

    def action_delete(self) -> None:
        """Soft-delete the selected key after a confirmation."""
        picked = self._selected_key()
        if picked is None:
            return
        ref, tenant, app, key = picked
        self._mask()

        def done(answer: str | None) -> None:
            if answer == "delete" and self._try(
                    f"cannot delete {app}/{key}", lambda: self.browser.delete(tenant, app, key)):
                self.notify(f"{app}/{key} deleted (u: undelete)")
                self._select_after_write(ref)

        self.push_screen(ConfirmScreen(f"Delete {tenant}/{app}/{key}? (undelete restores it)",
                                       [("delete", "Delete")]), done)

    def action_undelete(self) -> None:
        """Restore the latest version of the selected (deleted) key."""
        picked = self._selected_key()
        if picked is None:
            return
        ref, tenant, app, key = picked
        if self._try(f"cannot undelete {app}/{key}",
                     lambda: self.browser.undelete(tenant, app, key)):
            self.notify(f"{app}/{key} undeleted")
            self._select_after_write(ref)

    def action_history(self) -> None:
        """The versions of the selected key; choose one to roll back to."""
        picked = self._selected_key()
        if picked is None:
            return
        ref, tenant, app, key = picked
        self._mask()
        try:
            versions = self.browser.history(tenant, app, key)
        except MaculaError as exc:
            self.notify(f"no history of {app}/{key}: {exc}", severity="error")
            return

        def rollback(version: int | None) -> None:
            if version is None:
                return
            made: list[int] = []
            if self._try(f"cannot roll back {app}/{key}", lambda: made.append(
                    self.browser.rollback(tenant, app, key, version))):
                self.notify(f"{app}/{key}: version {version} is current again "
                            f"(as version {made[0]})")
                self._select_after_write(ref)

        self.push_screen(HistoryScreen(f"history of {tenant}/{app}/{key}", versions), rollback)

    # -- the store as a whole --------------------------------------------------------

    def action_sync(self) -> None:
        """Sync the selected tenant from its source now; report per app."""
        ref = self.selected
        tenant = ref.tenant if ref is not None else self.start_tenant
        self._mask()

        def job(progress: Callable[[int, int], None]) -> list[str]:
            return sync_lines(self.browser.sync(tenant, progress=progress))

        self.push_screen(JobScreen(f"sync tenant {tenant}", job), self._after_job)

    def action_rotate(self) -> None:
        """Rotate the master key (all tenants) after a confirmation, with progress."""
        self._mask()

        def confirmed(answer: str | None) -> None:
            if answer is None:
                return
            reencrypt = answer == "reencrypt"

            def job(progress: Callable[[int, int], None]) -> list[str]:
                self.browser.rotate(reencrypt=reencrypt, progress=progress)
                return ["master key rotated" + (" and data keys re-encrypted" if reencrypt
                                                else ""),
                        "back up the new key (or split it again): the old one no longer "
                        "opens the store"]

            self.push_screen(JobScreen("rotate the master key", job), self._after_job)

        self.push_screen(ConfirmScreen(
            "Rotate the master key of this store (all tenants)? Readers keep working. "
            "Old backups and shares of the key stop opening it.",
            [("rotate", "Rotate"), ("reencrypt", "Rotate + re-encrypt")]), confirmed)

    def action_leases(self) -> None:
        """The leases of dynamic credentials in the vault source; revoke one."""
        from .leasescreen import LeasesScreen

        self._mask()
        if self.browser.secrets.vault is None:
            self.notify("leases need a vault source (source = \"vault\" in the config file)",
                        severity="warning")
            return
        self.push_screen(LeasesScreen("leases in vault", self.browser.leases,
                                      self.browser.revoke_lease))

    def _after_job(self, _ok: bool | None) -> None:
        self._last_change = self.browser.secrets.store.last_change()
        self.reload()

    # -- shutdown --------------------------------------------------------------------

    def on_unmount(self) -> None:
        self._cancel_mask_timer()
        for sub in self._subscriptions.values():
            sub.cancel()
        self._subscriptions.clear()


def _walk(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
    out = []
    stack = list(reversed(node.children))
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(reversed(n.children))
    return out
