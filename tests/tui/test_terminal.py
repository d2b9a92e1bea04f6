"""``macula-secrets tui`` in a real terminal: tmux at 80x24, keys in, screen out.

Reveal a value, edit it, quit; then the new value reads back with
``macula-secrets get``, and neither value is in the pane's history
(the TUI drew on the alternate screen), the audit log or a Textual log file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DB_URL

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

NEW_VALUE = "postgres://canary-new-91c2@db/console"
WAIT = 20.0


class Tmux:
    """One private tmux server (its own socket) running a shell at 80x24."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], env=self.env,
                             capture_output=True, text=True, timeout=30, check=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", "tui", key)
            time.sleep(0.15)

    def text(self, text: str) -> None:
        self.run("send-keys", "-t", "tui", "-l", text)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

    def history(self) -> str:
        return self.run("capture-pane", "-p", "-S", "-", "-t", "tui")

    def wait_gone(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while text in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} still on screen after {WAIT} s")
            time.sleep(0.1)

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen within {WAIT} s:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def tmux(filled: dict[str, str], tmp_path: Path) -> Iterator[Tmux]:
    env = dict(filled, TERM="xterm-256color", TEXTUAL_LOG=str(tmp_path / "textual.log"),
               HISTFILE="/dev/null")
    t = Tmux(f"macula-tui-{os.getpid()}-{tmp_path.name}", env)
    t.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
          "bash --norc --noprofile")
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], env=env,
                       capture_output=True, timeout=30, check=False)


def test_reveal_edit_quit_in_a_real_terminal(tmux: Tmux, filled: dict[str, str],
                                             tmp_path: Path) -> None:
    tmux.text(f"{sys.executable} -m macula_secrets tui --reveal-seconds 600")
    tmux.keys("Enter")
    tmux.wait_for("audit log")
    time.sleep(0.5)
    tmux.keys("Down", "Down", "Enter", "Down")
    tmux.wait_for("default/console/database_url")
    tmux.keys("v")
    tmux.wait_for(DB_URL)
    tmux.keys("e")
    tmux.wait_for("edit default/console/database_url")
    tmux.keys("F7")  # the TextArea's select-all: typing replaces the value
    tmux.text(NEW_VALUE)
    tmux.wait_for(NEW_VALUE)
    tmux.keys("C-s")
    screen = tmux.wait_for("version  2")
    assert NEW_VALUE not in screen  # written and masked again
    tmux.keys("q")
    tmux.wait_gone("audit log")
    tmux.text("echo tui-ended")
    tmux.keys("Enter")
    tmux.wait_for("\ntui-ended")  # the shell's screen is back
    history = tmux.history()
    assert "macula_secrets tui" in history  # the history is there, the values are not
    assert DB_URL not in history and NEW_VALUE not in history
    got = subprocess.run([sys.executable, "-m", "macula_secrets", "get", "console",
                          "database_url"], env=filled, capture_output=True, text=True,
                         timeout=60, check=False)
    assert (got.returncode, got.stdout, got.stderr) == (0, NEW_VALUE + "\n", "")
    audit = (Path(filled["MACULA_SECRETS_HOME"]) / "audit.log").read_text()
    assert DB_URL not in audit and NEW_VALUE not in audit
    assert not (tmp_path / "textual.log").exists()
