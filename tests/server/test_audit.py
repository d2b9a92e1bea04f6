"""The server's audit log: a line per request, a chain `audit verify` accepts, fail closed."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from macula_secrets import audit as chain
from macula_secrets.cli import main
from macula_secrets.errors import UnavailableError
from macula_secrets.server.audit import ServerAudit

from .conftest import ROOT, Running
from .test_http import put, request


def lines(path: str) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_lines_per_request_and_verify(plain_server: Running,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A read is one line; a change two, as Vault's request and response entries: the
    request's line is written before the change is made."""
    put(plain_server, "console", "db", "hunter2")
    assert request(plain_server, "GET", "/v1/secret/data/macula/console/db")[0] == 200
    assert request(plain_server, "GET", "/v1/secret/data/macula/console/db",
                   token="s.wrong-token")[0] == 403
    assert request(plain_server, "GET", "/v1/secret/data/macula/..%2fx/k")[0] == 400
    entries = lines(plain_server.audit_path)
    assert len(entries) == 5
    asked, write, read, denied, bad = entries
    assert (asked["op"], asked["result"], asked["accessor"]) == ("write data", "request",
                                                                "acc-root")
    assert asked["path"] == write["path"] and "value_hmac" not in asked
    assert "version" not in asked and "status" not in asked
    assert write["op"] == "write data" and write["result"] == "ok"
    assert write["accessor"] == "acc-root" and write["version"] == 1
    assert (write["tenant"], write["app"], write["key"]) == ("default", "console", "db")
    assert str(write["value_hmac"]).startswith("hmac-sha256:")
    assert read["value_hmac"] == write["value_hmac"] and read["status"] == 200
    assert denied["result"] == "denied" and "accessor" not in denied
    assert str(denied["token_hmac"]).startswith("hmac-sha256:")
    assert bad["result"] == "bad request"
    text = Path(plain_server.audit_path).read_text()
    assert "hunter2" not in text and ROOT not in text and "s.wrong-token" not in text
    assert chain.verify(plain_server.audit_path).ok
    # The existing command checks the server's file as it is.
    assert main(["audit", "verify", "--server", "--home", str(plain_server.home)]) == 0
    assert "audit-server.log: 5 entries, hash chain intact" in capsys.readouterr().out
    assert main(["audit", "tail", "--server", "--home", str(plain_server.home)]) == 0
    assert "read data" in capsys.readouterr().out


def test_unwritable_audit_log_refuses_then_recovers(plain_server: Running) -> None:
    put(plain_server, "console", "db", "secret-value")
    audit = plain_server.serving.audit
    fd = audit._fd
    keep = os.dup(fd)  # holds the file (and its lock) while fd points elsewhere
    readonly = os.open(audit.path, os.O_RDONLY)
    os.dup2(readonly, fd)  # writes now fail with EBADF, as on a file that became unwritable
    try:
        status, body = request(plain_server, "GET", "/v1/secret/data/macula/console/db")
        assert status == 503 and "secret-value" not in json.dumps(body)
        assert "audit log" in body["errors"][0]  # type: ignore[index]
        status, _ = request(plain_server, "POST", "/v1/secret/data/macula/console/db",
                            json.dumps({"data": {"value": "new"}}))
        assert status == 503
        assert plain_server.secrets.get("console", "db") == "secret-value"  # no change made
        assert request(plain_server, "GET", "/v1/sys/health", token=None)[0] == 503
    finally:
        os.dup2(keep, fd)
        os.close(keep)
        os.close(readonly)
    status, body = request(plain_server, "GET", "/v1/secret/data/macula/console/db")
    assert status == 200 and body["data"]["data"]["value"] == "secret-value"  # type: ignore[index]
    assert put(plain_server, "console", "db", "new") == 2
    assert chain.verify(plain_server.audit_path).ok
    assert [(e["op"], e["result"]) for e in lines(plain_server.audit_path)] == [
        ("write data", "request"), ("write data", "ok"), ("read data", "ok"),
        ("write data", "request"), ("write data", "ok")]


def test_group_commit_chains_concurrent_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "a.log")
    log = ServerAudit(path, value_hmac=lambda v: None)

    async def many() -> None:
        await asyncio.gather(*[log.record("read data", {"n": i}, result="ok")
                               for i in range(500)])

    asyncio.run(many())
    assert log.lines == 500 and log.batches < 500
    log.close()
    assert chain.verify(path) == chain.Verification(lines=500, ok=True)


def test_a_failed_batch_leaves_the_chain_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "a.log")
    log = ServerAudit(path, value_hmac=lambda v: None)
    real = log._write

    def half_then_fail(fd: int, data: bytes) -> int:
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    async def run() -> None:
        await log.record("one", {}, result="ok")
        log._write = half_then_fail
        with pytest.raises(UnavailableError, match="No space left"):
            await log.record("two", {}, result="ok")
        assert log.failing
        log._write = real
        await log.record("three", {}, result="ok")

    asyncio.run(run())
    log.close()
    assert [e["op"] for e in lines(path)] == ["one", "three"]
    assert chain.verify(path).ok


def test_one_writer_per_file_and_torn_line_cut(tmp_path: Path) -> None:
    path = str(tmp_path / "a.log")
    log = ServerAudit(path, value_hmac=lambda v: None)
    with pytest.raises(UnavailableError, match="held by another server"):
        ServerAudit(path, value_hmac=lambda v: None)
    asyncio.run(log.record("one", {}, result="ok"))
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"torn":')
    log = ServerAudit(path, value_hmac=lambda v: None)
    asyncio.run(log.record("two", {}, result="ok"))
    log.close()
    assert chain.verify(path) == chain.Verification(lines=2, ok=True)


def test_cached_reads_write_the_same_line_as_the_full_path(plain_server: Running) -> None:
    """The hot read path (answered in the protocol, its line built from pieces) writes
    what the ASGI path writes: same fields, canonical JSON, one chain."""
    put(plain_server, "console", "db", 'va"lue\\ é')
    protocol = plain_server.serving.server.config.http
    answered: list[bytes] = []

    def counting(*args: object) -> bytes | None:
        body = fast(*args)
        if body is not None:
            answered.append(body)
        return body

    fast, protocol.fast = protocol.fast, staticmethod(counting)
    for _ in range(3):   # the first read fills the cache, the next two are answered from it
        status, body = request(plain_server, "GET", "/v1/secret/data/macula/console/db")
        assert status == 200 and body["data"]["data"]["value"] == 'va"lue\\ é'  # type: ignore[index]
    assert request(plain_server, "GET", "/v1/secret/data/macula/console/db",
                   token="s.wrong-token")[0] == 403   # refused: the full path answers
    entries = lines(plain_server.audit_path)
    reads = entries[2:5]  # after the write's request and response lines
    moving = {"time", "prev", "hash", "remote"}
    first = {k: v for k, v in reads[0].items() if k not in moving}
    for later in reads[1:]:
        assert {k: v for k, v in later.items() if k not in moving} == first
    assert entries[5]["result"] == "denied"
    assert len(answered) == 2
    assert chain.verify(plain_server.audit_path) == chain.Verification(lines=6, ok=True)
    assert plain_server.serving.audit.sync == "interval"


def test_always_mode_group_commits_and_interval_mode_fsyncs(tmp_path: Path) -> None:
    path = str(tmp_path / "always.log")
    log = ServerAudit(path, value_hmac=lambda v: None, sync="always")
    synced: list[int] = []
    real = log._fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    log._fsync = counting

    async def many() -> None:
        await asyncio.gather(*[log.record("read data", {"n": i}, result="ok")
                               for i in range(200)])

    asyncio.run(many())
    assert log.lines == 200 and 0 < len(synced) == log.batches < 200
    log.close()
    assert chain.verify(path) == chain.Verification(lines=200, ok=True)

    path = str(tmp_path / "interval.log")
    log = ServerAudit(path, value_hmac=lambda v: None, interval=0.02)
    log.write("one", {}, result="ok")
    deadline = time.monotonic() + 5
    while log.batches == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.batches == 1   # one background fsync covered the line
    log.write("two", {}, result="ok")
    log.close()               # and close fsyncs the rest
    assert log.batches == 2
    assert chain.verify(path) == chain.Verification(lines=2, ok=True)


def test_a_failed_background_fsync_fails_requests_until_one_succeeds(tmp_path: Path) -> None:
    path = str(tmp_path / "a.log")
    log = ServerAudit(path, value_hmac=lambda v: None, interval=3600)
    log.write("one", {}, result="ok")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    log._fsync = broken
    log.sync_now()
    for op in ("two", "two again"):   # refused until an fsync succeeds again
        with pytest.raises(UnavailableError, match="Input/output error"):
            log.write(op, {}, result="ok")
    assert log.failing
    log._fsync = os.fsync
    log.sync_now()
    log.write("three", {}, result="ok")
    assert not log.failing
    log.close()
    assert [e["op"] for e in lines(path)] == ["one", "three"]
    assert chain.verify(path).ok
