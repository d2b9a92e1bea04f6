"""What the server's ``sys/health`` and ``doctor`` both report: store integrity and
the last sync.

Read-only: SQLite's ``quick_check`` over a read-only connection, and the
sync records the store keeps. Nothing here names a value.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from . import _telemetry

if TYPE_CHECKING:
    from .localstore.store import LocalStore

__all__ = ["integrity_check", "last_sync", "sqlite_check"]


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sqlite_check(path: str, pragma: str = "quick_check") -> list[str]:
    """SQLite's own check of the store over a read-only connection: ``["ok"]`` or the
    problems found (``doctor`` runs the full ``integrity_check``).

    Raises:
        sqlite3.Error: the file cannot be opened or checked at all.
    """
    if pragma not in ("quick_check", "integrity_check"):
        raise ValueError(f"not a check pragma: {pragma}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
    finally:
        conn.close()


def integrity_check(path: str) -> dict[str, object]:
    """SQLite's ``PRAGMA quick_check`` of the store: ``{"status": "ok"|"failed", ...}``.

    ``quick_check`` reads every page but skips index contents, so it runs at
    a server's start without holding it up for long; ``doctor`` runs the full
    ``integrity_check`` and decrypts every version.
    """
    started = time.time()
    try:
        rows = sqlite_check(path)
    except sqlite3.Error as exc:
        return {"status": "failed", "detail": f"cannot check: {exc}", "checked_at": _utc(started)}
    if rows == ["ok"]:
        return {"status": "ok", "detail": "quick_check passed", "checked_at": _utc(started)}
    return {"status": "failed", "detail": rows[0], "problems": len(rows),
            "checked_at": _utc(started)}


def last_sync(store: LocalStore, tenant: str) -> dict[str, object]:
    """The tenant's last ``sync --git`` commit and time, and this process's last sync run.

    ``commit``/``time`` come from the store (any process); ``process`` is the
    last sync this process ran (folder, git or Vault), with its outcome.
    """
    synced = store.synced_commit(tenant)
    found: dict[str, object] = {"commit": None, "time": None}
    if synced is not None:
        found = {"commit": synced.commit, "time": _utc(synced.synced.timestamp())}
    ran = _telemetry.LAST_SYNC.get("time")
    found["process"] = None if ran is None else {
        "time": _utc(float(ran)), "ok": bool(_telemetry.LAST_SYNC.get("ok"))}
    return found
