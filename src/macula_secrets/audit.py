"""The audit log: one JSON line per change (and per audited read), in a hash chain.

``<home>/audit.log``, mode 0600. Each line records who (pid, uid, program),
what (operation, tenant, app, key, version; a value only as an HMAC), when
and the result, plus ``prev`` (the previous line's hash) and ``hash``
(SHA-256 over ``prev`` and the line's other fields in canonical JSON). Editing,
removing or reordering lines breaks the chain at that point, which
:func:`verify` reports by line number.

Fail closed, as Vault's audit devices are: the store appends the line inside
its write transaction, before the commit, and a line that cannot be written
aborts the change. A process killed mid-append leaves a partial last line;
it belonged to a change that was never committed, and the next append cuts
it off.

Several processes append to one file: each append takes an exclusive
``flock`` on it, reads the last line's hash, writes its line with one
``write`` and fsyncs before releasing the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .errors import UnavailableError

__all__ = ["AuditLog", "Verification", "describe_entry", "tail", "verify"]

GENESIS: Final = "0" * 64
"""``prev`` of the first line."""

_TAIL_CHUNK: Final = 8192


def _canonical(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash(prev: str, entry: dict[str, object]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(prev.encode("ascii") + b"\n" + _canonical(body)).hexdigest()


class AuditLog:
    """Appends hash-chained lines to one file; safe across threads and processes.

    ``hmac_key`` makes ``value_hmac`` fields: an operator with the key can
    check whether a given value was written, nobody can read it back.
    """

    def __init__(self, path: str, *, hmac_key: bytes | None = None) -> None:
        self.path = path
        self._hmac_key = hmac_key
        self._program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"

    def __repr__(self) -> str:
        return f"AuditLog({self.path!r})"

    def set_hmac_key(self, key: bytes) -> None:
        self._hmac_key = key

    def value_hmac(self, value: str) -> str | None:
        if self._hmac_key is None:
            return None
        return "hmac-sha256:" + hmac.new(self._hmac_key, value.encode("utf-8"),
                                         hashlib.sha256).hexdigest()

    def append(self, op: str, *, result: str = "ok", **fields: object) -> dict[str, object]:
        """Append one event; ``record(op, fields, result=result)`` with keyword fields."""
        return self.record(op, fields, result=result)

    def record(self, op: str, fields: Mapping[str, object], *, result: str = "ok"
               ) -> dict[str, object]:
        """Append one event; return it (with its hash). ``None`` fields are left out.

        Raises:
            UnavailableError: the line could not be written durably; the
                caller must not go on with the change (fail closed).
        """
        entry: dict[str, object] = {
            "time": _now(),
            "op": op,
            **{k: v for k, v in fields.items() if v is not None},
            "actor": {"pid": os.getpid(), "uid": os.getuid(), "program": self._program},
            "result": result,
        }
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UnavailableError(f"cannot open the audit log {self.path}: "
                                   f"{exc.strerror}; nothing was changed",
                                   hint="check that this user may write the file and its "
                                        "folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            prev = _last_hash(fd)
            entry["prev"] = prev
            entry["hash"] = _hash(prev, entry)
            line = _canonical(entry) + b"\n"
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, "short write")
            os.fsync(fd)
        except OSError as exc:
            raise UnavailableError(f"cannot write the audit log {self.path}: "
                                   f"{exc.strerror or exc}; nothing was changed") from None
        finally:
            os.close(fd)  # also releases the lock
        return entry


def _last_hash(fd: int) -> str:
    """The hash of the file's last complete line; cuts off a torn last line first."""
    size = os.fstat(fd).st_size
    if size == 0:
        return GENESIS
    if os.pread(fd, 1, size - 1) != b"\n":
        # A line torn by a crash: its change never committed. Drop it.
        size = _rfind_newline(fd, size) + 1
        os.ftruncate(fd, size)
        if size == 0:
            return GENESIS
    start = _rfind_newline(fd, size - 1) + 1
    last = os.pread(fd, size - 1 - start, start)
    try:
        value = json.loads(last)["hash"]
    except (ValueError, KeyError, TypeError):
        # Not ours: chain onto its digest; verify() reports the bad line.
        return "broken:" + hashlib.sha256(last).hexdigest()
    return str(value)


def _rfind_newline(fd: int, end: int) -> int:
    """Offset of the last newline before ``end``, or -1."""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        i = os.pread(fd, end - start, start).rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


def _now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns % 1_000_000_000 // 1000:06d}Z"


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking an audit log's chain."""

    lines: int
    ok: bool
    bad_line: int | None = None
    reason: str | None = None


def verify(path: str) -> Verification:
    """Check every line's hash and link; report the first line that breaks the chain."""
    prev = GENESIS
    count = 0
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return Verification(lines=0, ok=True)
    with f:
        for number, raw in enumerate(f, 1):
            count = number
            try:
                entry = json.loads(raw)
            except ValueError:
                return Verification(count, False, number, "not a JSON line")
            if not isinstance(entry, dict) or "hash" not in entry or "prev" not in entry:
                return Verification(count, False, number, "not an audit entry")
            if entry["prev"] != prev:
                return Verification(count, False, number,
                                    "does not follow the line before (lines removed or reordered)")
            if not hmac.compare_digest(str(entry["hash"]), _hash(prev, entry)):
                return Verification(count, False, number, "its hash does not match (edited)")
            prev = str(entry["hash"])
    return Verification(lines=count, ok=True)


def tail(path: str, count: int = 20) -> list[dict[str, object]]:
    """The last ``count`` entries (fewer if the log is shorter), oldest first."""
    if count <= 0:
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        # Read back from the end only as far as the last ``count`` lines:
        # the log grows for ever, ``audit tail`` must not read all of it.
        end = os.fstat(fd).st_size
        start = end
        for _ in range(count + 1):
            start = _rfind_newline(fd, start - 1) if start > 0 else -1
            if start < 0:
                break
        begin = start + 1
        lines = os.pread(fd, end - begin, begin).splitlines()
    finally:
        os.close(fd)
    out = []
    for raw in lines[-count:]:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def describe_entry(entry: Mapping[str, object], *, default_tenant: bool = True
                   ) -> tuple[str, str]:
    """``("tenant/app/key", "v3")`` of an entry, for people (``audit tail``, the TUI).

    Only named fields are read, so nothing else in an entry (the HMAC of a
    value) is shown; ``default_tenant=False`` leaves the ``default`` tenant out.
    """
    where = "/".join(str(entry[k]) for k in ("tenant", "app", "key")
                     if entry.get(k) is not None
                     and (default_tenant or k != "tenant" or entry[k] != "default"))
    if "version" in entry:
        version = f"v{entry['version']}"
    elif isinstance(versions := entry.get("versions"), list):
        version = "v" + ",".join(str(v) for v in versions)
    else:
        version = ""
    return where, version
