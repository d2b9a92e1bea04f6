"""Black-box tests of ``macula-secrets doctor``: each planted fault is found, named, and
fixed by the hint; a healthy home passes; no value or key material is ever printed."""

from __future__ import annotations

import base64
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets.keys.master import parse_key
from tests.cli._support import CANARY, Result, run_cli
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

OTHER_RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
"""Someone else's key (age's spec example): a file encrypted to it opens for nobody here."""
VALUES = {("web", "db_password"): f"{CANARY}-web", ("api", "token"): f"{CANARY}-api"}


@pytest.fixture
def home(tmp_path: Path, private_cwd: Path) -> Path:
    """A healthy home: two apps, a second version, a second tenant."""
    home = tmp_path / "home"
    env = _env(home)
    for (app, key), value in VALUES.items():
        run_cli("put", app, key, value, env=env).assert_ok()
    run_cli("put", "web", "db_password", VALUES[("web", "db_password")] + "-v2",
            env=env).assert_ok()
    run_cli("put", "--tenant", "acme", "web", "db_password", f"{CANARY}-acme",
            env=env).assert_ok()
    return home


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"MACULA_SECRETS_HOME": str(home), "MACULA_SECRETS_CONFIG": "",
            "MACULA_SECRETS_TENANT": "", "MACULA_SECRETS_DIR": "", "NO_COLOR": "", **extra}


def doctor(home: Path, *args: str, **extra: str) -> Result:
    result = run_cli("doctor", *args, env=_env(home, **extra))
    _assert_no_secrets(result, home)
    return result


def _assert_no_secrets(result: Result, home: Path) -> None:
    """Neither a value, nor the master key, nor an age identity in stdout or stderr."""
    text = result.text + result.err
    assert CANARY not in text
    assert "AGE-SECRET-KEY" not in text and TEST_AGE_SECRET not in text
    key_file = home / "master.key"
    if key_file.exists():
        key = parse_key(key_file.read_text(), source="test")
        assert base64.b64encode(key).decode() not in text
        assert key.hex() not in text
    assert "MACULA-MASTER-KEY-1" not in text


def _lines(result: Result, status: str) -> list[str]:
    return [line for line in result.text.splitlines() if line.startswith(status)]


def test_healthy_home_passes(home: Path) -> None:
    result = doctor(home)
    assert result.rc == 0, result.text
    assert result.err == ""
    assert _lines(result, "FAIL") == [] and _lines(result, "warn") == []
    text = result.text
    assert f"master key file {home / 'master.key'}: mode 0600" in text
    # Every live version of both tenants was decrypted (web: 2, api: 1, acme/web: 1).
    assert "4 live versions of 3 keys decrypt (tenants: acme, default)" in text
    assert "hash chain intact" in text
    assert text.splitlines()[-1].startswith("all ") and "checks passed" in text


def test_json_report(home: Path) -> None:
    result = doctor(home, "--json")
    assert result.rc == 0
    doc = json.loads(result.out)
    assert doc["ok"] is True and doc["home"] == str(home)
    checks = {c["check"] for c in doc["checks"]}
    assert {"keys", "store", "audit", "clock", "tpm", "vault", "secrets"} <= checks
    assert all(set(c) == {"check", "status", "message", "hint"} for c in doc["checks"])
    assert all(c["status"] in ("ok", "info") for c in doc["checks"])


def test_world_readable_key_file_fails_with_chmod_hint(home: Path) -> None:
    key_file = home / "master.key"
    key_file.chmod(0o644)
    result = doctor(home)
    assert result.rc == 1
    fails = _lines(result, "FAIL")
    assert any(f"master key file {key_file}: mode 0644, others can read it" in f
               for f in fails), result.text
    assert f"fix: chmod 600 {key_file}" in result.text
    key_file.chmod(0o600)
    assert doctor(home).rc == 0


def test_loose_identity_and_token_store_fail(home: Path, tmp_path: Path) -> None:
    identity = tmp_path / "keys.txt"
    identity.write_text(f"# public key: {TEST_AGE_PUBLIC}\n{TEST_AGE_SECRET}\n")
    identity.chmod(0o640)
    run_cli("token", "create", "--app", "web", "--policy", "read",
            env=_env(home)).assert_ok()
    (home / "tokens.db").chmod(0o604)
    result = doctor(home, "--json", SOPS_AGE_KEY_FILE=str(identity))
    assert result.rc == 1
    fails = {c["message"].split(":")[0]: c for c in json.loads(result.out)["checks"]
             if c["status"] == "fail"}
    assert fails[f"age identity file {identity}"]["hint"] == f"chmod 600 {identity}"
    assert fails[f"token store {home / 'tokens.db'}"]["hint"] == f"chmod 600 {home}/tokens.db"


def _flip_sealed(home: Path, tenant: str, app: str, key: str, version: int) -> None:
    """Change one byte of a sealed value, as someone with write access to store.db could."""
    conn = sqlite3.connect(home / "store.db", isolation_level=None)
    try:
        row = conn.execute("SELECT sealed FROM versions WHERE tenant = ? AND app = ? AND "
                           "key = ? AND version = ?", (tenant, app, key, version)).fetchone()
        sealed = bytearray(row[0])
        sealed[len(sealed) // 2] ^= 0x01
        assert conn.execute("UPDATE versions SET sealed = ? WHERE tenant = ? AND app = ? AND "
                            "key = ? AND version = ?",
                            (bytes(sealed), tenant, app, key, version)).rowcount == 1
    finally:
        conn.close()


def test_tampered_row_is_named(home: Path) -> None:
    _flip_sealed(home, "default", "web", "db_password", 1)
    _flip_sealed(home, "acme", "web", "db_password", 1)
    result = doctor(home)
    assert result.rc == 1
    fails = _lines(result, "FAIL")
    assert [f.split("row ", 1)[1] for f in fails] == [
        "acme/web/db_password version 1 fails its integrity check (changed on disk)",
        "default/web/db_password version 1 fails its integrity check (changed on disk)",
    ], result.text
    # SQLite itself sees nothing wrong: only the AES-GCM tags catch it.
    assert "SQLite integrity check passed" in result.text
    # --tenant limits the store check to one tenant.
    only = doctor(home, "--tenant", "default")
    assert [f.split("row ", 1)[1].split(" fails")[0] for f in _lines(only, "FAIL")] == [
        "default/web/db_password version 1"]


def test_corrupt_database_fails_integrity_check(home: Path) -> None:
    db = home / "store.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree header and cells
    db.write_bytes(bytes(data))
    result = doctor(home)
    assert result.rc == 1
    assert any(f"{db}:" in line and ("SQLite" in line) for line in _lines(result, "FAIL")), (
        result.text)


def test_broken_audit_chain_names_the_line(home: Path) -> None:
    log = home / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["app"] = "someone-else"
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    log.write_text("".join(lines))
    result = doctor(home)
    assert result.rc == 1
    assert _lines(result, "FAIL") == [
        f"FAIL  audit    audit log {log}: line 2 its hash does not match (edited)"], result.text


def test_broken_server_audit_chain(home: Path) -> None:
    from macula_secrets.audit import AuditLog

    path = home / "audit-server.log"
    server_log = AuditLog(str(path))
    for n in range(3):
        server_log.append("read", app="web", key=f"k{n}")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])  # a line removed
    result = doctor(home, "--json")
    fails = [c for c in json.loads(result.out)["checks"] if c["status"] == "fail"]
    assert [c["message"] for c in fails] == [
        f"server audit log {path}: line 2 does not follow the line before (lines removed "
        "or reordered)"]


def test_clock_behind_the_store_fails(home: Path) -> None:
    from macula_secrets._config import load_config
    from macula_secrets.doctor import check_clock

    cfg = load_config({}, home=str(home))
    assert [r.status for r in check_clock(cfg, now=_newest_write(home))] == ["ok"]
    behind = check_clock(cfg, now=_newest_write(home) - 3 * 3600)
    assert [r.status for r in behind] == ["fail"]
    assert "3 h behind" in behind[0].message and "NTP" in (behind[0].hint or "")
    unset = check_clock(cfg, now=86400.0)  # 1970-01-02: a board without a real-time clock
    assert [r.status for r in unset] == ["fail"] and "never set" in unset[0].message


def _newest_write(home: Path) -> float:
    return max(p.stat().st_mtime for p in home.iterdir())


def test_secrets_folder_files_are_decrypted(home: Path, tmp_path: Path,
                                            age_key_file: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"db_password: {CANARY}\n")
    for name, recipient in (("console", TEST_AGE_PUBLIC), ("billing", OTHER_RECIPIENT)):
        out = run_cli("encrypt", "--age", recipient, plain, env=_env(home))
        (folder / f"{name}.enc.yaml").write_bytes(out.assert_ok().out)
    result = doctor(home, MACULA_SECRETS_DIR=str(folder), SOPS_AGE_KEY_FILE=str(age_key_file))
    assert result.rc == 1
    assert f"ok    secrets  {folder}/console.enc.yaml: decrypts (1 key" in result.text
    fails = _lines(result, "FAIL")
    assert len(fails) == 1 and f"{folder}/billing.enc.yaml: " in fails[0], result.text


def test_missing_store_is_information_not_failure(tmp_path: Path, private_cwd: Path) -> None:
    home = tmp_path / "new-home"
    result = doctor(home)
    assert result.rc == 0, result.text
    assert f"info  store    no store at {home}/store.db yet" in result.text
    assert not (home / "store.db").exists()  # doctor does not create a store


def test_colour_only_on_a_terminal() -> None:
    from macula_secrets.cli.doctorcmd import format_results
    from macula_secrets.doctor import Result as Finding

    results = [Finding("keys", "fail", "key file k: mode 0644", hint="chmod 600 k")]
    assert "\x1b[" not in format_results(results, colour=False)
    assert "\x1b[1;31mFAIL\x1b[0m" in format_results(results, colour=True)


# -- TPM and Vault ------------------------------------------------------------------------


def test_tpm_check(tmp_path: Path, private_cwd: Path) -> None:
    from macula_secrets._config import Config, MasterKeyConfig
    from macula_secrets.doctor import check_tpm
    from tests._swtpm import missing_tools, start_swtpm

    if missing_tools():
        pytest.skip(f"needs {', '.join(missing_tools())}")
    plain = Config(home=str(tmp_path), secrets_dir=None, source="none")
    assert [r.status for r in check_tpm(plain, {})] == ["info"]
    with start_swtpm() as tpm:
        cfg = Config(home=str(tmp_path), secrets_dir=None, source="none",
                     master_key=MasterKeyConfig(provider="tpm", tcti=tpm.tcti))
        found = check_tpm(cfg, {})
        assert [(r.status, r.message) for r in found] == [
            ("ok", f"the TPM at {tpm.tcti} answers")]
        port = tpm.port
    gone = Config(home=str(tmp_path), secrets_dir=None, source="none",
                  master_key=MasterKeyConfig(provider="tpm",
                                             tcti=f"swtpm:host=127.0.0.1,port={port}"))
    assert [r.status for r in check_tpm(gone, {}, timeout=20)] == ["fail"]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        assert self.path == "/v1/sys/health"
        body = json.dumps({"sealed": self.status == 503, "version": "2.1.0",
                           "server_time_utc": 1}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def vault_nodes() -> Iterator[list[str]]:
    """Two fake Vault nodes on loopback: one active, one sealed."""
    servers = []
    for status in (200, 503):
        handler = type("H", (_Health,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def test_vault_nodes_named(vault_nodes: list[str], tmp_path: Path) -> None:
    from macula_secrets._config import Config, VaultConfig
    from macula_secrets.doctor import check_vault

    active, sealed = vault_nodes
    closed = "http://127.0.0.1:1"
    cfg = Config(home=str(tmp_path), secrets_dir=None, source="vault",
                 vault=VaultConfig(addresses=(active, sealed, closed)))
    found = [(r.status, r.message) for r in check_vault(cfg, now=1.0, timeout=2)]
    assert found[0] == ("ok", f"{active}: active (version 2.1.0)")
    assert found[1] == ("warn", f"{sealed}: sealed (version 2.1.0)")
    assert found[2][0] == "warn" and found[2][1].startswith(f"{closed}: unreachable")
    # Without an active node, a sealed one is a failure; the clock skew is reported.
    only_sealed = Config(home=str(tmp_path), secrets_dir=None, source="vault",
                         vault=VaultConfig(addresses=(sealed,)))
    assert [r.status for r in check_vault(only_sealed, now=1.0)] == ["fail"]
    skewed = [r.message for r in check_vault(
        Config(home=str(tmp_path), secrets_dir=None, source="vault",
               vault=VaultConfig(addresses=(active,))), now=7201.0)]
    assert skewed[1] == f"{active}: this clock differs from Vault's by 2 h"
