"""The ``tui`` command's shell: the missing-extra error, Textual's logging off, the panes."""

from __future__ import annotations

import sys

import pytest

from macula_secrets.cli import main
from macula_secrets.cli.tuicmd import quiet_textual
from macula_secrets.tui.app import MaculaApp
from macula_secrets.tui.model import Browser, KeyInfo, audit_line
from macula_secrets.tui.widgets import MASK, detail_text


def test_without_textual_one_clear_error(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "textual", None)  # import textual -> ImportError
    assert main(["tui"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "macula: error: the terminal UI needs textual, which is not installed",
        "macula: hint: pip install 'macula-secrets[tui]'",
    ]


def test_reveal_seconds_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "--reveal-seconds", "0"]) == 1
    assert "--reveal-seconds must be more than 0" in capsys.readouterr().err


def test_help_names_the_extra(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tui", "--help"])
    assert exc.value.code == 0
    assert "macula-secrets[tui]" in capsys.readouterr().out


def test_textual_log_and_devtools_are_turned_off() -> None:
    env = {"TEXTUAL_LOG": "/tmp/t.log", "TEXTUAL": "devtools,debug,other", "X": "1"}
    quiet_textual(env)
    assert env == {"TEXTUAL": "other", "X": "1"}
    env = {"TEXTUAL": "devtools"}
    quiet_textual(env)
    assert env == {}


def test_audit_line_shows_named_fields_only() -> None:
    entry: dict[str, object] = {
        "time": "2026-11-29T12:00:00.000000Z", "op": "put", "tenant": "default",
        "app": "console", "key": "db", "version": 3, "result": "ok",
        "value_hmac": "hmac-sha256:abc123", "actor": {"program": "macula-secrets", "pid": 7}}
    line = audit_line(entry)
    assert line == "12:00:00 put      default/console/db v3 ok macula-secrets"
    assert "abc123" not in line


def test_detail_says_source_stale_and_deleted() -> None:
    stale = str(detail_text(KeyInfo(4, "store (cache of vault)", stale=True), None))
    assert "STALE" in stale and "store (cache of vault)" in stale and MASK in stale
    fresh = str(detail_text(KeyInfo(4, "sops file", stale=False), "[b]v[/b]"))
    assert "STALE" not in fresh and "sops file" in fresh and "[b]v[/b]" in fresh
    gone = str(detail_text(KeyInfo(4, "store", stale=False, deleted=True), "the-value"))
    assert "deleted" in gone and "the-value" not in gone


async def _crash(browser: Browser, capsys: pytest.CaptureFixture[str]) -> str:
    class Crashing(MaculaApp):
        def action_reveal(self) -> None:
            revealed = "canary-local-5e1d"  # a local Textual's report would print
            raise RuntimeError(revealed[:0] + "unexpected")

    app = Crashing(browser)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("v")
            await pilot.pause()
    return "".join(capsys.readouterr())


@pytest.mark.anyio
async def test_a_crash_prints_no_locals(browser: Browser,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Textual's crash report has the locals; ours (printed to stderr) has the type only."""
    report = await _crash(browser, capsys)
    assert "RuntimeError" in report
    assert "canary-local" not in report
