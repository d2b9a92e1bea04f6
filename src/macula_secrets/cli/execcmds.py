"""``exec-env`` and ``exec-file``: give a decrypted file to a child process.

``exec-env`` puts the top-level values in the child's environment; nothing
is written to disk. ``exec-file`` writes the plaintext into a private
temporary folder (a FIFO by default, so the bytes never reach the disk; a
0600 file with ``--no-fifo``) and removes it when the child exits. The
child's exit status becomes ours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading

from ..sops.tree import Branch, Comment
from .filecmds import _decrypt, _formats, _name, _read, _store
from .output import CommandError


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError("no command given", hint="put the command after the file")
    if args.run == "exec-env":
        return _exec_env(args, command)
    return _exec_file(args, command)


def _argv(command: list[str]) -> list[str]:
    """One word runs through the shell (as sops does); several run directly."""
    if len(command) == 1:
        return ["/bin/sh", "-c", command[0]]
    return command


def env_value(key: str, value: object) -> str:
    """A top-level value as an environment string, converted as sops converts it."""
    from ..sops.stores._flat import value_to_string

    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value_to_string(value)


def _exec_env(args: argparse.Namespace, command: list[str]) -> int:
    name = _name(args)
    fmt_in, _ = _formats(args, name)
    doc = _decrypt(args, _read(args.file), name, fmt_in)
    env = {} if args.pristine else dict(os.environ)
    for branch in doc.branches:  # type: ignore[attr-defined]
        for key, value in branch:
            if key.__class__ is Comment:
                continue
            if isinstance(value, (Branch, list)):
                raise CommandError(
                    f"cannot use complex value in environment; offending key {key}"
                )
            env[str(key)] = env_value(str(key), value)
    try:
        return subprocess.run(_argv(command), env=env, check=False).returncode
    except FileNotFoundError:
        raise CommandError(f"command not found: {command[0]}") from None


def _exec_file(args: argparse.Namespace, command: list[str]) -> int:
    name = _name(args)
    fmt_in, fmt_out = _formats(args, name)
    doc = _decrypt(args, _read(args.file), name, fmt_in)
    plain = doc.plaintext(_store(fmt_out, args))  # type: ignore[attr-defined]
    tmpdir = tempfile.mkdtemp(prefix=".sops")
    try:
        if args.no_fifo:
            filename = args.filename or "tmp-file" + os.urandom(6).hex()
            path = os.path.join(tmpdir, filename)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(plain)
            writer = None
        else:
            path = os.path.join(tmpdir, args.filename or "tmp-file")
            os.mkfifo(path, 0o600)
            writer = threading.Thread(target=_feed_fifo, args=(path, plain), daemon=True)
            writer.start()
        argv = [part.replace("{}", path) for part in command]
        try:
            status = subprocess.run(_argv(argv), check=False).returncode
        except FileNotFoundError:
            raise CommandError(f"command not found: {command[0]}") from None
        if writer is not None and writer.is_alive():
            # The child never opened the FIFO: unblock the writer and move on.
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
            writer.join(timeout=1)
        return status
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _feed_fifo(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError:
        # The reader went away (BrokenPipeError) or never came: nothing to do.
        return
