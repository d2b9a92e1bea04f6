"""The audit log: what a change records, the hash chain, fail-closed writes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.audit import AuditLog, tail, verify
from macula_secrets.errors import UnavailableError

SECRET = "value-that-must-not-appear-Zq81"


@pytest.fixture
def secrets(tmp_path: Path) -> Secrets:
    s = Secrets.open(home=tmp_path / "home", source="none", env={})
    yield s
    s.close()


def entries(secrets: Secrets) -> list[dict[str, object]]:
    assert secrets.config is not None
    return tail(secrets.config.audit_path, 1000)


def test_every_change_is_recorded_without_its_value(secrets: Secrets) -> None:
    secrets.put("app", "k", SECRET)
    secrets.put("app", "k", SECRET + "2", cas=1)
    secrets.delete("app", "k")
    secrets.undelete("app", "k")
    secrets.rollback("app", "k", 1)
    secrets.destroy("app", "k", [1])
    secrets.rotate_master_key(reencrypt=True)
    ops = [e["op"] for e in entries(secrets)]
    assert ops == ["put", "put", "delete", "undelete", "rollback", "destroy", "rotate-master",
                   "reencrypt"]
    first = entries(secrets)[0]
    assert first["app"] == "app" and first["key"] == "k" and first["version"] == 1
    assert first["result"] == "ok" and isinstance(first["actor"], dict)
    assert str(first["value_hmac"]).startswith("hmac-sha256:")
    assert secrets.config is not None
    raw = Path(secrets.config.audit_path).read_text()
    assert SECRET not in raw
    assert verify(secrets.config.audit_path).ok


def test_same_value_same_hmac_other_value_other_hmac(secrets: Secrets) -> None:
    secrets.put("app", "a", "same")
    secrets.put("app", "b", "same")
    secrets.put("app", "c", "other")
    h = [e["value_hmac"] for e in entries(secrets)]
    assert h[0] == h[1] != h[2]


def test_audit_log_is_private(secrets: Secrets) -> None:
    secrets.put("app", "k", "v")
    assert secrets.config is not None
    assert Path(secrets.config.audit_path).stat().st_mode & 0o777 == 0o600


def test_unwritable_audit_log_refuses_the_change(tmp_path: Path) -> None:
    home = tmp_path / "home"
    s = Secrets.open(home=home, source="none", env={})
    try:
        s.put("app", "k", "v1")
        log = home / "audit.log"
        log.rename(home / "audit.saved")
        log.mkdir()  # a folder where the log should be: every append fails
        with pytest.raises(UnavailableError, match="audit log"):
            s.put("app", "k", "v2")
        with pytest.raises(UnavailableError):
            s.delete("app", "k")
        assert s.get("app", "k") == "v1"
        assert [h.version for h in s.history("app", "k")] == [1]
    finally:
        s.close()
    s = Secrets.open(home=home, source="none", env={})
    try:
        assert s.get("app", "k") == "v1"
    finally:
        s.close()


@pytest.mark.parametrize("edit", ["change", "delete", "swap", "garbage"])
def test_verify_names_the_first_broken_line(tmp_path: Path, edit: str) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    for i in range(5):
        log.append("put", app="a", key=f"k{i}", version=1)
    assert verify(str(path)).ok and verify(str(path)).lines == 5
    lines = path.read_text().splitlines(keepends=True)
    if edit == "change":
        lines[2] = lines[2].replace('"k2"', '"kX"')
    elif edit == "delete":
        del lines[2]
    elif edit == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    else:
        lines[2] = "not json\n"
    path.write_text("".join(lines))
    result = verify(str(path))
    assert not result.ok and result.bad_line == 3, result


def test_a_torn_last_line_is_cut_off_by_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    log.append("put", app="a", key="k", version=1)
    with open(path, "ab") as f:
        f.write(b'{"op":"put","app":"a","ke')  # a crash in the middle of a write
    log.append("put", app="a", key="k", version=2)
    result = verify(str(path))
    assert result.ok and result.lines == 2
    assert [e["version"] for e in tail(str(path))] == [1, 2]


def _append_many(path: str, worker: int) -> None:
    log = AuditLog(path)
    for i in range(50):
        log.append("put", app="a", key=f"w{worker}", version=i + 1)


def test_concurrent_processes_keep_one_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.log")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    result = verify(path)
    assert result.ok and result.lines == 200
    per_worker: dict[str, list[int]] = {}
    for e in tail(path, 1000):
        per_worker.setdefault(str(e["key"]), []).append(int(e["version"]))  # type: ignore[call-overload]
    assert all(v == list(range(1, 51)) for v in per_worker.values())


def test_json_lines_are_canonical(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    AuditLog(str(path)).append("put", app="a", key="k", version=1)
    line = path.read_text().splitlines()[0]
    entry = json.loads(line)
    assert set(entry) >= {"time", "op", "app", "key", "version", "actor", "result", "prev", "hash"}
    assert entry["prev"] == "0" * 64


def test_a_change_that_fails_half_way_leaves_no_line(secrets: Secrets) -> None:
    """sync's apply() queues a line per key; a failure later in the same transaction
    (here: a tampered stored value) rolls back every change and writes no line."""
    import sqlite3

    store = secrets.store
    store.put("default", "app", "b", "old-b")
    before = len(entries(secrets))
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE versions SET sealed = zeroblob(40) WHERE key = 'b'")
    store.close()
    assert secrets.config is not None
    fresh = Secrets.open(home=secrets.config.home, source="none", env={})
    try:
        from macula_secrets.errors import IntegrityError

        with pytest.raises(IntegrityError):
            fresh.store.apply("default", "app", {"a": "new-a", "b": "new-b"}, origin="sops")
        assert len(tail(fresh.config.audit_path, 1000)) == before  # type: ignore[union-attr]
        assert fresh.store.list_keys("default", "app") == ["b"]
    finally:
        fresh.close()


def test_a_source_write_that_fails_is_recorded_as_aborted(secrets: Secrets) -> None:
    def fail(_version: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        secrets.store.put("default", "app", "k", "v", before_commit=fail)
    ops = [(e["op"], e["result"]) for e in entries(secrets)]
    assert ops == [("put", "ok"), ("abort", "error")]
    assert secrets.get("app", "k") is None
    assert secrets.config is not None and verify(secrets.config.audit_path).ok
