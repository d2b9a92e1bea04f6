"""File writes that never leave a half-written file behind.

A write goes to a temporary file in the same folder, is flushed and fsynced,
then renamed over the target, and the folder is fsynced so the rename
survives a power cut. If anything fails before the rename, the original file
is untouched (sops issue 484 lost a file when an in-place encrypt failed
half-way). An existing file keeps its permission bits; a new one gets
``mode`` (0600 by default: these files hold secrets or keys).
"""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    name = os.path.basename(target)
    try:
        keep = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        keep = mode
    _remove_stale_temporaries(folder, name)
    fd = -1
    tmp = ""
    for attempt in range(100):
        tmp = os.path.join(folder, f".{name}.tmp{os.getpid()}.{attempt}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 stale temp files
        raise FileExistsError(f"cannot create a temporary file next to {target}")
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchmod(fd, keep)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Delete temporary files a killed writer left behind (``kill -9`` mid-write).

    Only files of our naming pattern whose writing process no longer exists
    are removed; the target itself is never touched.
    """
    prefix = f".{name}.tmp"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid_text = entry[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
        except PermissionError:
            continue  # alive, and someone else's
