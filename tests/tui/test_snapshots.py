"""Snapshots of the key screens at 80x24 (pytest-textual-snapshot; SVGs in __snapshots__).

Determinism: the data is fixed (conftest's ``filled``), and what carries a
clock or a process id (the audit pane's lines, the history's creation
times) comes from a ``Browser`` that answers with fixed text. Update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from textual.pilot import Pilot

from macula_secrets import Secrets
from macula_secrets.records import VersionInfo
from macula_secrets.tui.app import MaculaApp
from macula_secrets.tui.model import Browser
from macula_secrets.tui.wizard import WizardApp

Snap = Callable[..., bool]

FIXED_AUDIT = [
    "12:00:00 put      default/console/database_url v1 ok macula-secrets",
    "12:00:01 put      default/console/pem v1 ok macula-secrets",
    "12:00:02 read     default/console/database_url v1 ok python via tui",
]


class FixedBrowser(Browser):
    """The real store, with clock-bearing text replaced by fixed text."""

    def audit_lines(self, count: int) -> list[str]:
        return FIXED_AUDIT[-count:]

    def history(self, tenant: str, app: str, key: str) -> list[VersionInfo]:
        real = super().history(tenant, app, key)
        return [VersionInfo(v.version, datetime(2026, 1, v.version, 12, 0, tzinfo=UTC),
                            current=v.current) for v in real]


@pytest.fixture
def fixed(filled: dict[str, str]) -> Iterator[FixedBrowser]:
    b = FixedBrowser(Secrets.open(env=filled))
    b.put("default", "console", "database_url", "postgres://second@db/console")
    yield b
    b.close()


async def _to_key(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.press("down", "down", "enter", "down")
    await pilot.pause()


def test_main_screen_masked(snap_compare: Snap, fixed: FixedBrowser) -> None:
    assert snap_compare(MaculaApp(fixed), run_before=_to_key)


def test_main_screen_revealed(snap_compare: Snap, fixed: FixedBrowser) -> None:
    async def reveal(pilot: Pilot[None]) -> None:
        await _to_key(pilot)
        await pilot.press("v")

    assert snap_compare(MaculaApp(fixed, reveal_seconds=600), run_before=reveal)


def test_edit_dialog(snap_compare: Snap, fixed: FixedBrowser) -> None:
    async def edit(pilot: Pilot[None]) -> None:
        await _to_key(pilot)
        await pilot.press("down", "e")
        await pilot.pause()

    assert snap_compare(MaculaApp(fixed), run_before=edit)


def test_history_dialog(snap_compare: Snap, fixed: FixedBrowser) -> None:
    async def history(pilot: Pilot[None]) -> None:
        await _to_key(pilot)
        await pilot.press("h")
        await pilot.pause()

    assert snap_compare(MaculaApp(fixed), run_before=history)


def test_rotate_confirmation(snap_compare: Snap, fixed: FixedBrowser) -> None:
    async def rotate(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()

    assert snap_compare(MaculaApp(fixed), run_before=rotate)


def test_wizard(snap_compare: Snap) -> None:
    app = WizardApp(home="/var/lib/macula-secrets", env={}, tpm=True)

    async def wait(pilot: Pilot[None]) -> None:
        await pilot.pause()

    assert snap_compare(app, run_before=wait)
