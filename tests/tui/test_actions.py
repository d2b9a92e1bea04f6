"""Actions of the main screen, driven by Textual's pilot at 80x24 against a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, TextArea

from macula_secrets import Secrets
from macula_secrets.tui.app import MaculaApp
from macula_secrets.tui.model import Browser
from macula_secrets.tui.screens import ConfirmScreen, EditScreen, HistoryScreen, JobScreen
from macula_secrets.tui.widgets import MASK, AuditPane, DetailPane

from .conftest import DB_URL, PEM

pytestmark = pytest.mark.anyio

SIZE = (80, 24)


def _detail(app: MaculaApp) -> str:
    return str(app.query_one(DetailPane).render())


async def _open_console(pilot: object, app: MaculaApp, key: str = "database_url") -> None:
    """From the start (cursor on tenant default): open console and select ``key``."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await pilot.pause()
    await pilot.press("down", "down", "enter")
    for _ in range(3):
        if app.selected is not None and app.selected.key == key:
            break
        await pilot.press("down")
    assert app.selected is not None and app.selected.key == key, app.selected


@pytest.fixture
def other(filled: dict[str, str]) -> Iterator[Secrets]:
    """Another ``Secrets`` on the same home: "another process" changing the store."""
    with Secrets.open(env=filled) as s:
        yield s


async def test_reveal_is_audited_and_masks_after_the_timeout(browser: Browser) -> None:
    app = MaculaApp(browser, reveal_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        assert DB_URL not in _detail(app)
        await pilot.press("v")
        assert DB_URL in _detail(app)
        await pilot.pause(1.0)
        assert DB_URL not in _detail(app)
        assert MASK in _detail(app)
    path = browser.audit_path
    assert path is not None
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    reads = [e for e in lines if e["op"] == "read"]
    assert reads and reads[-1]["key"] == "database_url" and reads[-1]["via"] == "tui"
    assert "canary-db" not in Path(path).read_text()


async def test_reveal_masks_when_the_selection_moves(browser: Browser) -> None:
    app = MaculaApp(browser, reveal_seconds=60)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        await pilot.press("v")
        assert DB_URL in _detail(app)
        await pilot.press("down")
        assert app.selected is not None and app.selected.key == "pem"
        assert DB_URL not in _detail(app) and "line-one" not in _detail(app)
        await pilot.press("v")
        assert "line-one\nline-two" in _detail(app)
        await pilot.press("v")  # again: mask
        assert "line-one" not in _detail(app)


async def test_edit_a_multiline_value(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app, "pem")
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        area = app.screen.query_one(TextArea)
        assert area.text == PEM
        area.text = PEM + "\nline-three"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)
        assert "version  2" in _detail(app)
    assert browser.view("default").get("console", "pem") == PEM + "\nline-three"


async def test_add_a_key_to_the_selected_app(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        await pilot.press("a")
        assert isinstance(app.screen, EditScreen)
        await pilot.press(*"api_key")  # the app is filled in, the key field has the focus
        app.screen.query_one(TextArea).text = "new-value"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.selected is not None and app.selected.path == (
            "default", "console", "api_key")
    assert browser.view("default").get("console", "api_key") == "new-value"


async def test_cancel_changes_nothing(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        await pilot.press("e")
        app.screen.query_one(TextArea).text = "not saved"
        await pilot.press("escape")
        await pilot.pause()
    assert browser.view("default").get("console", "database_url") == DB_URL


async def test_history_and_rollback(browser: Browser) -> None:
    browser.put("default", "console", "database_url", "second")
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        assert "version  2" in _detail(app)
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        await pilot.press("up", "r")  # version 1
        await pilot.pause()
        assert not isinstance(app.screen, HistoryScreen)
        assert "version  3" in _detail(app)
    view = browser.view("default")
    assert view.get("console", "database_url") == DB_URL
    assert [v.version for v in view.history("console", "database_url")] == [1, 2, 3]


async def test_delete_then_undelete(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#delete")
        await pilot.pause()
        assert browser.view("default").get("console", "database_url") is None
        assert "deleted" in _detail(app)
        node = app.key_tree.cursor_node
        assert node is not None and "(deleted)" in str(node.label)
        await pilot.press("u")
        await pilot.pause()
        assert "live" in _detail(app)
    assert browser.view("default").get("console", "database_url") == DB_URL


async def test_delete_can_be_cancelled(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        await pilot.press("d", "escape")
        await pilot.pause()
    assert browser.view("default").get("console", "database_url") == DB_URL


def _put_in_another_process(env: dict[str, str], app: str, key: str) -> None:
    done = subprocess.run([sys.executable, "-m", "macula_secrets", "put", app, key],
                          input="from another process", env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


async def test_a_change_by_another_process_arrives_by_subscription(
        browser: Browser, filled: dict[str, str]) -> None:
    app = MaculaApp(browser, poll_seconds=600)  # no poll: only Secrets.subscribe
    async with app.run_test(size=SIZE) as pilot:
        await _open_console(pilot, app)
        assert "version  1" in _detail(app)
        _put_in_another_process(filled, "console", "database_url")
        _put_in_another_process(filled, "console", "added_elsewhere")
        for _ in range(100):
            await pilot.pause(0.05)
            if "version  2" in _detail(app):
                break
        assert "version  2" in _detail(app)
        assert app.selected is not None and app.selected.key == "database_url"
        console = app.key_tree.root.children[1].children[1]
        assert "added_elsewhere" in [str(n.label) for n in console.children]


async def test_new_apps_and_audit_lines_appear(browser: Browser,
                                              filled: dict[str, str]) -> None:
    app = MaculaApp(browser, poll_seconds=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        _put_in_another_process(filled, "newapp", "k")
        audit = app.query_one(AuditPane)
        for _ in range(100):
            await pilot.pause(0.05)
            if any("newapp/k" in line for line in audit.lines):
                break
        labels = [str(n.label) for n in app.key_tree.root.children[1].children]
        assert "newapp" in labels
        assert any("put" in line and "default/newapp/k" in line for line in audit.lines)


async def test_sync_reports_per_app(browser: Browser, filled: dict[str, str]) -> None:
    from macula_secrets import sops
    from tests.conftest import TEST_AGE_PUBLIC

    folder = Path(filled["MACULA_SECRETS_DIR"])
    (folder / "shop.enc.yaml").write_bytes(
        sops.encrypt({"db_password": "from-git"}, recipients=[TEST_AGE_PUBLIC]))
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        assert isinstance(app.screen, JobScreen)
        screen = app.screen
        for _ in range(50):
            await pilot.pause(0.1)
            if screen.finished:
                break
        assert screen.ok, screen.report
        assert any(line.startswith("shop (shop.enc.yaml): 1 added") for line in screen.report), \
            screen.report
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, JobScreen)
        labels = [str(n.label) for n in app.key_tree.root.children[1].children]
        assert "shop" in labels
    assert browser.info("default", "shop", "db_password") is not None
    info = browser.info("default", "shop", "db_password")
    assert info is not None and info.source == "sops file"


async def test_rotate_master_key_with_progress(browser: Browser, other: Secrets) -> None:
    before = browser.secrets.store.master_key_id()
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#reencrypt")
        await pilot.pause()
        assert isinstance(app.screen, JobScreen)
        screen = app.screen
        for _ in range(100):
            await pilot.pause(0.1)
            if screen.finished:
                break
        assert screen.ok, screen.report
        await pilot.press("escape")
    assert browser.secrets.store.master_key_id() != before
    assert other.get("console", "database_url") == DB_URL  # a reader keeps working


async def test_rotate_can_be_cancelled(browser: Browser) -> None:
    before = browser.secrets.store.master_key_id()
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("R", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert browser.secrets.store.master_key_id() == before


async def test_leases_without_a_vault_source_says_so(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen | EditScreen | HistoryScreen | JobScreen)
        assert app.screen is app.screen_stack[0]
        assert [n.message for n in app._notifications] == [
            'leases need a vault source (source = "vault" in the config file)']
