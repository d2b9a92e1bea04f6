"""Required sinks fail closed (503, nothing served); best-effort sinks only count.

Real failures: a collector that went away, a full tmpfs (mounted by the
test when it may; else the test says so and is skipped), a file that
cannot be opened.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability._support import Collector, serve

VALUE = "s3cr3t-fail-closed-value"


def _closed_tcp_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_required_socket_sink_that_goes_away_refuses_requests(tmp_path: Path) -> None:
    collector = Collector(tmp_path / "collector.sock")
    config = f"""
[[audit.sinks]]
type = "socket"
name = "collector"
address = "unix://{tmp_path / 'collector.sock'}"
required = true

[[audit.sinks]]
type = "socket"
name = "nowhere"
address = "tcp://127.0.0.1:{_closed_tcp_port()}"
required = false
"""
    with serve(tmp_path / "home", config) as server:
        assert server.put("web", "db", VALUE) == 200
        for _ in range(3):   # the first fills the cache; the rest take the fast path
            status, body = server.read("web", "db")
            assert status == 200 and VALUE in body.decode()
        # The collector holds the file's lines, byte for byte (the put's request and
        # response lines, three reads).
        assert collector.lines(5) == server.audit_lines()
        stats = {s.name: s for s in server.serving.audit.sinks.stats}  # type: ignore[union-attr]
        assert stats["collector"].failures == 0
        before = len(server.audit_lines())

        collector.close()
        os.unlink(tmp_path / "collector.sock")
        status, body = server.read("web", "db")
        assert status == 503 and VALUE.encode() not in body
        assert b"audit sink collector" in body
        assert server.put("web", "db", "another") == 503
        assert server.call("GET", "/v1/sys/health")[0] == 503
        # Nothing was added to the file for the refused requests.
        assert len(server.audit_lines()) == before
        assert stats["collector"].failures >= 3

        # The collector comes back: so does the server (a new connection per failure).
        collector = Collector(tmp_path / "collector.sock")
        status, body = server.read("web", "db")
        assert status == 200 and VALUE in body.decode()
        assert collector.lines(1) == server.audit_lines()[before:]
        # The best-effort sink never took a line and never held a request up.
        server.serving.audit.sinks.close()  # type: ignore[union-attr]  # flush its queue
        assert stats["nowhere"].failures == len(server.audit_lines()) > 0
        assert stats["nowhere"].lines == 0
    collector.close()


@contextlib.contextmanager
def _small_tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); the "
                    "unwritable-file test covers a failing file sink")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def test_disk_full_fails_a_required_file_sink_and_counts_for_a_best_effort_one(
        tmp_path: Path) -> None:
    with _small_tmpfs(tmp_path / "small") as small:
        config = f"""
[[audit.sinks]]
type = "file"
name = "full-best-effort"
path = "{small / 'best-effort.jsonl'}"
required = false
"""
        with serve(tmp_path / "home1", config) as server:
            filler = _fill(small)
            assert server.put("web", "db", VALUE) == 200
            assert server.read("web", "db")[0] == 200
            server.serving.audit.sinks.close()  # type: ignore[union-attr]
            stats = server.serving.audit.sinks.stats[0]  # type: ignore[union-attr]
            # The write's request and response lines, and the read's: three lines lost.
            assert stats.failures == 3 and stats.last_error == os.strerror(errno.ENOSPC)
            filler.unlink()

        config = f"""
[[audit.sinks]]
type = "file"
name = "full-required"
path = "{small / 'required.jsonl'}"
required = true
"""
        with serve(tmp_path / "home2", config) as server:
            assert server.put("web", "db", VALUE) == 200
            filler = _fill(small)
            # The sink file's last page still has room for a few lines; then it is full.
            for _ in range(50):
                status, body = server.read("web", "db")
                if status != 200:
                    break
            assert status == 503 and VALUE.encode() not in body
            assert json.loads(body)["errors"][0].endswith(
                f"{os.strerror(errno.ENOSPC)}; request refused")
            filler.unlink()
            assert server.read("web", "db")[0] == 200
            lines = (small / "required.jsonl").read_bytes().splitlines(keepends=True)
            assert lines == server.audit_lines()


@pytest.mark.parametrize("audit_sync", ["interval", "always"])
def test_a_required_file_sink_that_cannot_be_opened_refuses_everything(
        tmp_path: Path, audit_sync: str) -> None:
    # As root, permission bits do not stop a write: a path under a missing folder does.
    config = f"""
[[audit.sinks]]
type = "file"
path = "{tmp_path / 'missing' / 'audit.jsonl'}"
required = true
"""
    with serve(tmp_path / "home", config, audit_sync=audit_sync) as server:
        status, body = server.put("web", "db", VALUE), b""
        assert status == 503
        status, body = server.read("web", "db")
        assert status == 503 and VALUE.encode() not in body
        assert server.audit_lines() == []
        assert server.serving.audit.failures >= 2
        # The folder appears: the sink opens the file and the server serves again.
        # The refused write never happened (its request line came first and failed).
        (tmp_path / "missing").mkdir()
        assert server.read("web", "db")[0] == 404
        assert server.put("web", "db", VALUE) == 200
        status, body = server.read("web", "db")
        assert status == 200 and VALUE in body.decode()
        assert (tmp_path / "missing" / "audit.jsonl").read_bytes().splitlines(
            keepends=True) == server.audit_lines()
