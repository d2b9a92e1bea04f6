"""Unlock once: the agent, against real processes.

Passphrases come from ``MACULA_SECRETS_ASKPASS``, a small script that
counts how often it is asked (the commands run without a terminal), so
"asks once" is a count, not a guess. Each command is a separate process,
as a person's shell session would run them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrage import passphrase as age_passphrase

from macula_secrets.keys.age import format_identity_file, generate_identity
from tests.cli._support import run_proc

PASSPHRASE = "agent test passphrase"


class Session:
    """A shell session: an environment with an askpass that counts, and an agent socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count_file = root / "asked"
        askpass = root / "askpass"
        askpass.write_text(f"#!/bin/sh\necho x >> {self.count_file}\necho '{PASSPHRASE}'\n")
        askpass.chmod(0o700)
        self.socket = root / "run" / "agent.sock"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SOPS_", "MACULA_SECRETS_"))}
        self.env.update({"MACULA_SECRETS_ASKPASS": str(askpass),
                         "MACULA_SECRETS_AGENT_SOCK": str(self.socket),
                         "MACULA_SECRETS_HOME": str(root / "home")})

    @property
    def asked(self) -> int:
        return len(self.count_file.read_text().splitlines()) if self.count_file.exists() else 0

    def run(self, *args: str | os.PathLike[str], input: bytes | None = None) -> str:
        result = run_proc(*args, env=self.env, input=input)
        assert result.rc == 0, result.err
        return result.text

    def fails(self, *args: str | os.PathLike[str]) -> str:
        result = run_proc(*args, env=self.env)
        assert result.rc == 1, result.err
        return result.err


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path)
    try:
        yield s
    finally:
        if s.socket.exists():
            run_proc("agent", "stop", env=s.env)


def _protected_identity_and_files(s: Session, count: int) -> list[Path]:
    """A passphrase-protected identity file (as ``age -p`` makes) and ``count`` sops files."""
    from datetime import UTC, datetime

    identity = generate_identity()
    text = format_identity_file(identity, created=datetime.now(UTC))
    protected = s.root / "keys.age"
    protected.write_bytes(age_passphrase.encrypt(text.encode(), PASSPHRASE))
    s.env["SOPS_AGE_KEY_FILE"] = str(protected)
    files = []
    for i in range(count):
        plain = s.root / f"app{i}.yaml"
        plain.write_text(f"password: value-{i}\n")
        s.run("encrypt", "--age", str(identity.to_recipient()), "-i", plain)
        files.append(plain)
    return files


def test_twenty_decrypts_ask_for_the_passphrase_once(session: Session) -> None:
    files = _protected_identity_and_files(session, 20)
    # Without an agent, every process asks.
    for f in files[:2]:
        session.run("decrypt", f)
    assert session.asked == 2
    session.run("agent", "start", "--ttl", "10m")
    for i, f in enumerate(files):
        assert session.run("decrypt", f) == f"password: value-{i}\n"
    assert session.asked == 3  # once for the twenty
    status = session.run("agent", "status")
    assert "holds 1 unlocked key" in status
    assert PASSPHRASE not in status
    # After `agent lock` the next use asks again, then is remembered again.
    session.run("agent", "lock")
    session.run("decrypt", files[0])
    session.run("decrypt", files[1])
    assert session.asked == 4


def test_the_agent_forgets_after_its_ttl(session: Session) -> None:
    files = _protected_identity_and_files(session, 1)
    session.run("agent", "start", "--ttl", "4s")  # room for two process starts on a busy CI box
    session.run("decrypt", files[0])
    session.run("decrypt", files[0])
    assert session.asked == 1
    time.sleep(4.5)  # past the TTL: the behaviour after it, not a timing, is what is checked
    session.run("decrypt", files[0])
    assert session.asked == 2


def test_a_passphrase_sealed_master_key_is_asked_once_per_session(session: Session) -> None:
    session.env["MACULA_SECRETS_KEY_PROVIDER"] = "passphrase"
    session.run("put", "app", "k", "v")  # creates the store, sealing its key: asks once
    first = session.asked
    assert first >= 1
    session.run("agent", "start")
    session.run("get", "app", "k")
    assert session.asked == first + 1
    for _ in range(3):
        assert session.run("get", "app", "k") == "v\n"
    assert session.asked == first + 1


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_connect_to_the_agent(session: Session) -> None:
    import shutil
    import tempfile

    # Outside pytest's private tmp folder, so that only the agent's own folder decides.
    outer = Path(tempfile.mkdtemp(prefix="macula-agent-test-"))
    outer.chmod(0o711)
    session.socket = outer / "run" / "agent.sock"
    session.env["MACULA_SECRETS_AGENT_SOCK"] = str(session.socket)
    try:
        _other_users(session)
    finally:
        run_proc("agent", "stop", env=session.env)
        shutil.rmtree(outer)


def _other_users(session: Session) -> None:
    session.run("agent", "start")
    folder = session.socket.parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert session.socket.stat().st_mode & 0o777 == 0o600
    assert _connect_as(65534, session.socket) == "refused"
    # Even with the folder and socket opened to everyone, the agent asks the kernel who
    # is calling (SO_PEERCRED) and answers only its own user.
    folder.chmod(0o711)
    session.socket.chmod(0o666)
    assert _connect_as(65534, session.socket) == "not the agent's user"
    assert _connect_as(0, session.socket) == "answered"
    session.socket.chmod(0o600)
    # Opened up by mistake, the folder makes the client refuse to talk to it.
    folder.chmod(0o755)
    try:
        err = session.fails("agent", "status")
        assert "is not a private folder of this user" in err
    finally:
        folder.chmod(0o700)


def _connect_as(uid: int, path: Path) -> str:
    """Ask the agent for its status from a forked child running as ``uid`` (we are root).

    ``refused`` (the socket cannot be reached), ``answered`` (a status came
    back) or the agent's error.
    """
    import json
    import socket

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid and try; no exec, so no interpreter to reach
        outcome = "error"
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
                s.sendall(b'{"op": "status"}\n')
                reply = json.loads(s.makefile().readline())
            outcome = "answered" if reply.get("ok") else str(reply.get("error"))
        except PermissionError:
            outcome = "refused"
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        outcome = f.read()
    os.waitpid(pid, 0)
    return outcome


def test_unlock_opens_a_store_from_shares_without_a_key_file(session: Session) -> None:
    home = session.root / "home"
    session.run("put", "app", "k", "v")
    shares = session.root / "shares"
    session.run("key", "split", "--shares", "3", "--threshold", "2", "--out-dir", shares)
    files = sorted(shares.iterdir())
    (home / "master.key").unlink()
    err = session.fails("get", "app", "k")
    assert "no master key" in err and "unlock" in err
    session.run("agent", "start")
    session.run("unlock", files[0], files[2])
    assert session.run("get", "app", "k") == "v\n"
    assert not (home / "master.key").exists()  # the key lives only in the agent
    session.run("agent", "lock")
    assert "no master key" in session.fails("get", "app", "k")


def test_unlock_refuses_shares_of_another_key(session: Session) -> None:
    session.run("put", "app", "k", "v")
    other = session.root / "other"
    env = dict(session.env, MACULA_SECRETS_HOME=str(other))
    assert run_proc("put", "app", "k", "v", env=env).rc == 0
    shares = session.root / "shares"
    assert run_proc("key", "split", "--shares", "2", "--threshold", "2", "--out-dir", shares,
                    env=env).rc == 0
    (session.root / "home" / "master.key").unlink()
    session.run("agent", "start")
    err = session.fails("unlock", *sorted(shares.iterdir()))
    assert "does not open the store" in err
    assert "no master key" in session.fails("get", "app", "k")


def test_key_migrate_and_escrow_from_the_command_line(session: Session,
                                                      tmp_path: Path) -> None:
    home = session.root / "home"
    session.run("put", "app", "k", "v")
    session.env["MACULA_SECRETS_PASSPHRASE"] = PASSPHRASE
    session.run("key", "migrate", "--to", "passphrase")
    assert not (home / "master.key").exists()
    assert (home / "master.key.sealed").exists()
    assert session.run("get", "app", "k") == "v\n"
    keygen = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    recovery = tmp_path / "recovery.txt"
    recovery.write_text(keygen)
    recipient = next(line.split(": ", 1)[1] for line in keygen.splitlines()
                     if line.startswith("# public key: "))
    path = session.run("key", "escrow", "--recipient", recipient).strip()
    out = subprocess.run(["age", "-d", "-i", str(recovery), path], capture_output=True,
                         check=True)
    assert out.stdout.startswith(b"# macula-secrets master key")
    # The escrow copy is the key: as a plain key file it opens the store.
    (home / "master.key.sealed").unlink()
    (home / "master.key").write_bytes(out.stdout)
    (home / "master.key").chmod(0o600)
    del session.env["MACULA_SECRETS_PASSPHRASE"]
    assert session.run("get", "app", "k") == "v\n"
