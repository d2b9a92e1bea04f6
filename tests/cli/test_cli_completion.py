"""``macula-secrets completion bash|zsh|fish``: scripts made from the parser tree.

The bash script is sourced in a real bash and driven the way bash drives a
completion function (``COMP_WORDS``, ``COMP_CWORD``); zsh and fish scripts
are at least parsed by their shell (``-n``) when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli._support import run_cli


def _script(shell: str) -> str:
    result = run_cli("completion", shell).assert_ok()
    assert result.err == ""
    return result.text


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    path = tmp_path_factory.mktemp("completion") / "macula-secrets.bash"
    path.write_text(_script("bash"))
    return path


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers for ``macula-secrets WORDS`` (the last word is being typed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source {script}\n"
               f"COMP_WORDS=(macula-secrets {quoted}); COMP_CWORD={len(words)}\n"
               "_macula_secrets\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_commands(bash_script: Path) -> None:
    offered = complete(bash_script, "")
    for name in ("get", "put", "list", "history", "sync", "token", "doctor", "completion",
                 "encrypt", "decrypt", "key", "audit", "node"):
        assert name in offered
    assert complete(bash_script, "do") == ["doctor"]
    assert complete(bash_script, "--config", "x.yaml", "hi") == ["history"]
    # "key" here is --config's value (a file named key), not the command key.
    assert "get" in complete(bash_script, "--config", "key", "")


def test_bash_options(bash_script: Path) -> None:
    assert set(complete(bash_script, "get", "--")) == {
        "--help", "--version", "--json", "--no-newline", "--tenant", "--home"}
    assert complete(bash_script, "doctor", "--j") == ["--json"]
    # After an option that takes a value, the next word is that value, not a command.
    assert set(complete(bash_script, "get", "--tenant", "acme", "--")) >= {"--json", "--home"}


def test_bash_operations_and_choices(bash_script: Path) -> None:
    assert set(complete(bash_script, "key", "")) == {
        "rotate-master", "split", "combine", "migrate", "escrow"}
    assert complete(bash_script, "token", "list", "--j") == ["--json"]
    assert complete(bash_script, "encrypt", "--input-type", "") == [
        "yaml", "json", "dotenv", "ini", "binary"]
    assert complete(bash_script, "completion", "") == ["bash", "zsh", "fish"]
    # A value without choices is left to bash's file completion (-o default).
    assert complete(bash_script, "decrypt", "--output", "") == []


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_parse(shell: str, tmp_path: Path) -> None:
    text = _script(shell)
    assert "doctor" in text and "rotate-master" in text
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed: only generated, not parsed")
    path = tmp_path / f"macula-secrets.{shell}"
    path.write_text(text)
    done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_walk_sees_every_command() -> None:
    from macula_secrets.cli import _COMMANDS, build_parser
    from macula_secrets.cli.completion import walk

    nodes = {n.path: n for n in walk(build_parser())}
    assert set(nodes[""].subcommands) == set(_COMMANDS)
    assert nodes["key split"].takes_value >= {"--shares", "--threshold"}
    assert nodes["audit tail"].options.keys() >= {"-n", "--lines", "--json", "--server"}
