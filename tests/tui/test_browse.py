"""The main screen driven by Textual's pilot at 80x24: browse, reveal and re-mask."""

from __future__ import annotations

import pytest

from macula_secrets.tui.app import MaculaApp
from macula_secrets.tui.model import Browser
from macula_secrets.tui.widgets import MASK, DetailPane

from .conftest import DB_URL

pytestmark = pytest.mark.anyio

SIZE = (80, 24)


def _detail(app: MaculaApp) -> str:
    return str(app.query_one(DetailPane).render())


async def test_browse_tenants_apps_keys(browser: Browser) -> None:
    app = MaculaApp(browser)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.key_tree
        labels = [str(n.label) for n in tree.root.children]
        assert labels == ["acme", "default"]
        default = tree.root.children[1]
        assert default.is_expanded
        assert [str(n.label) for n in default.children] == ["billing", "console"]
        # the cursor starts on the configured tenant: billing, console, open it, its key
        assert app.selected is not None and app.selected.path == ("default",)
        await pilot.press("down", "down", "enter")
        await pilot.press("down")
        assert app.selected is not None
        assert app.selected.path == ("default", "console", "database_url")
        text = _detail(app)
        assert "version  1" in text and "source   store" in text
        assert MASK in text and DB_URL not in text
