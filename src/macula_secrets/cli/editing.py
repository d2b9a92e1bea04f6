"""The editor round trip shared by ``edit`` and ``envfile edit``.

The editor needs a file, so the plaintext goes to a 0600 file alone in a
0700 folder of our own, removed whatever happens (other users never see it;
it is the one place plaintext touches the disk, and only while the editor
runs). The edited text is checked before anything is saved; on a terminal a
person may go back to the editor to fix it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import TypeVar

from ..errors import MaculaError
from .output import CommandError, note

__all__ = ["edit_privately"]

T = TypeVar("T")


def edit_privately(plain: bytes, *, filename: str, prefix: str,
                   check: Callable[[bytes], T], invalid: str) -> T | None:
    """Open ``plain`` in the editor; return ``check(edited)``, or ``None`` if unchanged.

    ``check`` raises a ``MaculaError`` for text that cannot be saved;
    ``invalid`` is the error when that happens and no terminal can answer.
    """
    from .filecmds import _editor_argv

    editor = _editor_argv()
    tmpdir = tempfile.mkdtemp(prefix=prefix)
    try:
        tmp = os.path.join(tmpdir, filename)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(plain)
        before = hashlib.sha256(plain).digest()
        while True:
            status = subprocess.run([*editor, tmp], check=False).returncode
            if status != 0:
                raise CommandError(f"the editor exited with status {status}; nothing was saved")
            with open(tmp, "rb") as f:
                edited = f.read()
            if hashlib.sha256(edited).digest() == before:
                note("file has not changed, exiting")
                return None
            try:
                return check(edited)
            except MaculaError as exc:
                note(f"could not read the edited file: {exc}")
                if not sys.stdin.isatty():
                    raise CommandError(invalid) from None
                sys.stderr.write("Press Enter to return to the editor, or Ctrl+C to exit.")
                sys.stderr.flush()
                sys.stdin.readline()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
