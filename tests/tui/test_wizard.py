"""The first-run wizard on an empty home, driven by Textual's pilot at 80x24."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from macula_secrets import Secrets
from macula_secrets.cli.tuicmd import needs_key_restore, needs_setup
from macula_secrets.keys.master import parse_key
from macula_secrets.keys.shares import split_secret
from macula_secrets.tui.keysetup import Outcome
from macula_secrets.tui.wizard import WizardApp

pytestmark = pytest.mark.anyio

SIZE = (80, 24)


@pytest.fixture
def empty(node_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A node with no store, no master key and no age identity yet."""
    env = dict(node_env, SOPS_AGE_KEY_FILE=str(tmp_path / "new" / "keys.txt"))
    assert needs_setup(None, env)
    return env


async def _choose(pilot: Pilot[Outcome | None], ident: str) -> None:
    await pilot.pause()
    methods = pilot.app.query_one("#methods", OptionList)
    index = [methods.get_option_at_index(i).id for i in range(methods.option_count)]
    methods.highlighted = index.index(ident)
    await pilot.press("enter")


async def _type(pilot: Pilot[Outcome | None], field: str, text: str) -> None:
    """Fill a field and press Enter in it (faster than a key press per character)."""
    pilot.app.query_one(field, Input).value = text
    pilot.app.query_one(field, Input).focus()
    await pilot.press("enter")


async def _finish(pilot: Pilot[Outcome | None]) -> None:
    for _ in range(100):
        await pilot.pause(0.05)
        if pilot.app.return_value is not None:
            return
    raise AssertionError(str(pilot.app.query_one("#status", Static).render()))


async def test_generate_makes_identity_key_and_store(empty: dict[str, str]) -> None:
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        options = app.query_one("#methods", OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == ["generate", "import", "passphrase", "shares"]  # no TPM: not offered
        await _choose(pilot, "generate")
        await _finish(pilot)
    outcome = app.return_value
    assert outcome is not None
    assert Path(empty["SOPS_AGE_KEY_FILE"]).read_text().count("AGE-SECRET-KEY-1") == 1
    assert any("public key age1" in line for line in outcome.summary)
    with Secrets.open(env=outcome.env) as s:
        s.put("app", "k", "v")
    assert not needs_setup(None, empty)


async def test_tpm_is_offered_when_present(empty: dict[str, str]) -> None:
    app = WizardApp(home=None, env=empty, tpm=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        options = app.query_one("#methods", OptionList)
        assert "tpm" in [options.get_option_at_index(i).id
                         for i in range(options.option_count)]


async def test_import_an_identity_file(empty: dict[str, str], age_key_file: Path) -> None:
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await _choose(pilot, "import")
        await _type(pilot, "#import-path", str(age_key_file))
        await _finish(pilot)
    assert Path(empty["SOPS_AGE_KEY_FILE"]).read_text() == age_key_file.read_text()


async def test_a_bad_import_path_is_shown_and_can_be_fixed(empty: dict[str, str],
                                                           tmp_path: Path) -> None:
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await _choose(pilot, "import")
        await _type(pilot, "#import-path", str(tmp_path / "missing.txt"))
        for _ in range(50):
            await pilot.pause(0.05)
            if not app.busy:
                break
        assert "error:" in str(app.query_one("#status", Static).render())
        assert app.return_value is None
        await _choose(pilot, "generate")
        await _finish(pilot)


async def test_passphrase_seals_the_key(empty: dict[str, str]) -> None:
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await _choose(pilot, "passphrase")
        await pilot.press(*"correct horse", "enter")  # typed: the field takes keys
        await _type(pilot, "#pass2", "correct horsX")
        await pilot.pause()
        assert "differ" in str(app.query_one("#status", Static).render())
        app.query_one("#pass2", Input).value = "correct horse"
        await pilot.press("ctrl+s")
        await _finish(pilot)
    outcome = app.return_value
    assert outcome is not None
    home = Path(empty["MACULA_SECRETS_HOME"])
    table = tomllib.loads((home / "config.toml").read_text())["master_key"]
    assert table["provider"] == "passphrase"
    assert "correct horse" not in (home / "config.toml").read_text()
    assert "correct horse" not in repr(outcome)
    assert "correct horse" not in "\n".join(outcome.summary)
    assert any("asked on the terminal" in line for line in outcome.summary)
    assert not (home / "master.key").exists()
    with Secrets.open(env=outcome.env) as s:  # the env holds the passphrase chosen
        s.put("app", "k", "v")


async def test_restore_from_shares(empty: dict[str, str], tmp_path: Path) -> None:
    key = bytes(range(32))
    shares = split_secret(key, "master-key", 3, 2)
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await _choose(pilot, "shares")
        await _type(pilot, "#share", "not a share")
        await pilot.pause()
        assert "error:" in str(app.query_one("#status", Static).render())
        await _type(pilot, "#share", shares[0])
        assert "1 of 2 shares" in str(app.query_one("#share-count").render())
        await _type(pilot, "#share", shares[2])
        await _finish(pilot)
    path = Path(empty["MACULA_SECRETS_HOME"]) / "master.key"
    assert parse_key(path.read_text(), source=str(path)) == key


async def test_escape_quits_without_changes(empty: dict[str, str]) -> None:
    app = WizardApp(home=None, env=empty, tpm=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_value is None
    assert needs_setup(None, empty)


async def test_a_lost_key_file_is_restored_from_shares(filled: dict[str, str]) -> None:
    from .conftest import DB_URL

    path = Path(filled["MACULA_SECRETS_HOME"]) / "master.key"
    shares = split_secret(parse_key(path.read_text(), source=str(path)), "master-key", 3, 2)
    assert not needs_key_restore(None, filled)
    path.unlink()
    assert needs_key_restore(None, filled) and not needs_setup(None, filled)
    app = WizardApp(home=None, env=filled, tpm=True, restore_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        options = app.query_one("#methods", OptionList)
        assert [options.get_option_at_index(i).id
                for i in range(options.option_count)] == ["shares"]
        await pilot.press("enter")
        await _type(pilot, "#share", shares[1])
        await _type(pilot, "#share", shares[2])
        await _finish(pilot)
    assert not needs_key_restore(None, filled)
    with Secrets.open(env=filled) as s:
        assert s.get("console", "database_url") == DB_URL
