"""The TUI's lease view against a real OpenBao (database engine) and PostgreSQL.

What must hold, and what a broken view would get wrong: ``l`` lists the
leases Vault holds with their short ids and a TTL that counts down (a view
that showed ids only, or whole ids, fails); ``x`` then the confirmation
revokes the selected lease in OpenBao and PostgreSQL drops its role, while
the other lease and its login live on; no credential and no whole lease id
is ever on screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from macula_secrets import Secrets
from macula_secrets.tui.app import MaculaApp
from macula_secrets.tui.leasescreen import LeasesScreen
from macula_secrets.tui.model import Browser
from macula_secrets.tui.screens import ConfirmScreen
from tests._dbengine import configure, login, lookup, role_exists
from tests._openbao import Server
from tests._postgres import Postgres

pytestmark = [pytest.mark.interop, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def bao(bao_dev: Server, pg: Postgres) -> Server:
    configure(bao_dev, pg, {"tui": ("40s", "120s")})
    return bao_dev


@pytest.fixture
def browser(bao: Server, tmp_path: Path) -> Iterator[Browser]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[vault]\nrefresh = 30\n")
    b = Browser(Secrets.open(home=home, source="vault",
                             env={"VAULT_ADDR": bao.address, "VAULT_TOKEN": bao.token}))
    yield b
    b.close()


def issue(bao: Server) -> dict[str, Any]:
    _, body = bao.request("GET", "/v1/database/creds/tui")
    return body


async def until(pilot: Any, done: Any) -> None:
    for _ in range(200):
        if done():
            return
        await pilot.pause(0.05)
    raise AssertionError("the lease view did not finish loading")


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def short(lease_id: str) -> str:
    return f"{lease_id[:lease_id.rindex('/') + 5]}…"


def seconds(ttl: str) -> int:
    m = re.fullmatch(r"(?:(\d+)m)?(\d+)s", ttl)
    assert m, ttl
    return int(m[1] or 0) * 60 + int(m[2])


async def test_lease_view_lists_counts_down_and_revokes(bao: Server, pg: Postgres,
                                                        browser: Browser) -> None:
    first, second = issue(bao), issue(bao)
    ids = sorted([first["lease_id"], second["lease_id"]])
    app = MaculaApp(browser)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, LeasesScreen)
        await until(pilot, lambda: screen.loaded)
        table = screen.query_one(DataTable)
        # Every lease of the dev server is listed (its tokens' too); ours among them.
        shown = [r for r in rows(table) if r[0].startswith("database/creds/tui/")]
        assert [r[0] for r in shown] == [short(x) for x in ids]
        assert all(r[3] == "yes" and 30 <= seconds(r[1]) <= 40 for r in shown), shown
        at = [r[0] for r in rows(table)].index(short(ids[0]))
        before = seconds(shown[0][1])
        await pilot.pause(2.2)  # the countdown runs on the screen's clock, not Vault
        assert seconds(rows(table)[at][1]) < before

        text = app.export_screenshot()
        for secret in (*ids, first["data"]["password"], second["data"]["password"]):
            assert secret not in text

        table.move_cursor(row=[r[0] for r in rows(table)].index(short(first["lease_id"])))
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#revoke")
        await pilot.pause()
        await until(pilot, lambda: screen.loaded)
        left = [r[0] for r in rows(table)]
        assert short(second["lease_id"]) in left and short(first["lease_id"]) not in left
    assert lookup(bao, first["lease_id"]) == 400
    assert not role_exists(pg, first["data"]["username"])
    assert login(pg, second["data"]) == second["data"]["username"]
