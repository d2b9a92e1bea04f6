"""A store opened before fork() works in the child (gunicorn --preload, multiprocessing)."""

from __future__ import annotations

import os
from pathlib import Path

from macula_secrets import Secrets


def test_forked_child_reads_and_writes_through_its_own_connection(tmp_path: Path) -> None:
    s = Secrets.open(home=tmp_path, source="none", env={})
    try:
        s.put("a", "k", "from-parent")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                ok = s.get("a", "k") == "from-parent" and s.put("a", "k", "from-child") == 2
                os.write(write_end, b"ok" if ok else b"bad")
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        assert os.read(read_end, 10) == b"ok"
        os.close(read_end)
        assert os.waitstatus_to_exitcode(status) == 0
        assert s.get("a", "k") == "from-child"
        assert [h.version for h in s.history("a", "k")] == [1, 2]
    finally:
        s.close()
