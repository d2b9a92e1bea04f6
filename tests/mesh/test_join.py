"""Joining a node through a bootstrap, end to end: two homes on one machine, real servers.

The bootstrap B is a real ``serve`` (in a thread, TLS, its own token store)
over a home with a sops folder (one file written by the real sops) and a
store; the node N is the real console script (``join``) in a subprocess,
with a home of its own, and in one test the library ``join`` with a wire
hook. What must hold, and what a broken join would get wrong:

- approved: N's own key (never sent) opens every file of the folder in the
  real sops, N's store holds the granted app's values and not the others
  (and N's own server, on its own port, serves them),
  N's token reads the granted app on B's server and nothing else, and B's
  audit log has the request, the approval and the delivery;
- rejected: N ends with an error and has nothing: no values, no token, not
  a recipient;
- a wrong fingerprint: N refuses before sending anything (B has no request);
- the traffic holds no private key and no granted value in the clear;
- two of three approvers: one approval leaves N waiting, the second lets it in;
- removed: N's token is revoked and N's key opens none of the rotated files.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from macula_secrets import Secrets
from macula_secrets._config import load_config
from macula_secrets.cli.joincmds import _configure
from macula_secrets.errors import PermissionDeniedError
from macula_secrets.keys import age
from macula_secrets.mesh.joiner import join
from macula_secrets.server.policy import build_rules
from macula_secrets.server.run import ServeOptions, Serving, fingerprint, prepare, start_in_thread
from macula_secrets.server.tokens import TokenStore
from tests.cli._support import MACULA_BIN, run_cli
from tests.conftest import run_sops

pytestmark = pytest.mark.interop

DB_PASSWORD = "db-pw-canary-51f2"
API_KEY = "api-canary-9d0e"
STRIPE = "stripe-not-granted-77ab"
WAIT = 20.0


@dataclass
class Bootstrap:
    home: Path
    repo: Path
    folder: Path
    admin_key: Path
    url: str
    fingerprint: str
    serving: Serving
    secrets: Secrets

    @property
    def env(self) -> dict[str, str]:
        return {"MACULA_SECRETS_HOME": str(self.home), "SOPS_AGE_KEY_FILE": str(self.admin_key),
                "MACULA_SECRETS_CONFIG": "", "MACULA_SECRETS_DIR": ""}

    def cli(self, *args: str) -> Any:
        return run_cli(*args, env=self.env, cwd=self.repo)

    def audit_ops(self) -> list[str]:
        lines = (self.home / "audit.log").read_text().splitlines()
        return [json.loads(line)["op"] for line in lines]


def _identity(folder: Path, name: str) -> tuple[Path, str]:
    identity = age.generate_identity()
    path = folder / f"{name}.txt"
    age.write_identity_file(path, identity)
    return path, identity.to_recipient().text


def _ssh_key(folder: Path, name: str) -> tuple[Path, str]:
    key = Ed25519PrivateKey.generate()
    path = folder / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return path, public


def _start(tmp_path: Path, sops_bin: str, mesh: str = "") -> Iterator[Bootstrap]:
    keys = tmp_path / "keys"
    keys.mkdir()
    admin_key, admin = _identity(keys, "admin")
    repo = tmp_path / "repo"
    folder = repo / "secrets"
    folder.mkdir(parents=True)
    (repo / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: secrets/.*\n    age: {admin}\n")
    (folder / "console.enc.yaml").write_text(f"db_password: {DB_PASSWORD}\napi_key: {API_KEY}\n")
    proc = run_sops(sops_bin, "encrypt", "-i", "secrets/console.enc.yaml", cwd=repo,
                    env={"SOPS_AGE_KEY_FILE": str(admin_key), "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    (folder / "web.enc.json").write_text('{"token": "web-token-3c1"}')
    run_cli("encrypt", "-i", folder / "web.enc.json", cwd=repo,
            env={"SOPS_AGE_KEY_FILE": str(admin_key)}).assert_ok()
    home = tmp_path / "bootstrap"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(
        f'secrets_dir = "{folder}"\nsource = "sops"\n[mesh]\napps = ["console"]\n' + mesh)
    env = {"SOPS_AGE_KEY_FILE": str(admin_key)}
    secrets = Secrets.open(home=home, env=env)
    secrets.sync()
    secrets.put("billing", "stripe", STRIPE)
    serving = prepare(ServeOptions(address="127.0.0.1:0"), secrets=secrets, out=lambda _l: None)
    thread = start_in_thread(serving)
    assert serving.cert is not None
    try:
        yield Bootstrap(home, repo, folder, admin_key, serving.url, fingerprint(serving.cert),
                        serving, secrets)
    finally:
        serving.stop()
        thread.join(timeout=15)
        secrets.close()


@pytest.fixture
def boot(tmp_path: Path, sops_bin: str) -> Iterator[Bootstrap]:
    yield from _start(tmp_path, sops_bin)


def _node_env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MACULA_", "SOPS_"))}
    return {**base, "MACULA_SECRETS_HOME": str(home), "MACULA_SECRETS_DIR": ""}


_RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_join_left_running() -> Iterator[None]:
    """A test that fails while a join waits must not leave the process behind."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


class Joining:
    """``macula-secrets join`` running in a subprocess; its code once printed."""

    def __init__(self, boot: Bootstrap, home: Path, name: str, *extra: str,
                 fingerprint: str | None = None) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [MACULA_BIN, "join", boot.url, "--name", name, "--fingerprint",
             fingerprint or boot.fingerprint, "--poll", "0.1", "--timeout", "60", *extra],
            env=_node_env(home), cwd=home.parent, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        _RUNNING.append(self.proc)

    def code(self) -> str:
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert line.startswith("macula: join code "), line
        return line.split()[-1]

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            raise
        return self.proc.returncode, out, err


def _pending(boot: Bootstrap, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        listed = boot.cli("node", "pending", "--json").assert_ok()
        found = [r for r in json.loads(listed.out) if r["name"] == name]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no pending request of {name}")


def _read(boot: Bootstrap, token: str, app: str, key: str) -> int:
    assert boot.serving.cert is not None
    resp = httpx.get(f"{boot.url}/v1/secret/data/macula/{app}/{key}",
                     headers={"X-Vault-Token": token},
                     verify=ssl.create_default_context(cafile=boot.serving.cert))
    return resp.status_code


def test_join_approve_gives_folder_values_and_token(boot: Bootstrap, tmp_path: Path,
                                                    sops_bin: str) -> None:
    node = tmp_path / "node"
    joining = Joining(boot, node, "edge-1")
    code = joining.code()
    request = _pending(boot, "edge-1")
    assert request["code"] == code and request["approvals"] == [] and request["required"] == 1
    boot.cli("node", "approve", "edge-1", "--code", code).assert_ok()
    rc, _, err = joining.finish()
    assert rc == 0, err
    assert "console: 2 values written" in err
    for secret in (DB_PASSWORD, API_KEY, STRIPE):
        assert secret not in err

    # The node's own key, made on the node and never sent, opens every file in sops.
    key_file = node / "node.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    for name in ("console.enc.yaml", "web.enc.json"):
        proc = run_sops(sops_bin, "decrypt", str(boot.folder / name),
                        env={"SOPS_AGE_KEY_FILE": str(key_file)})
        assert proc.returncode == 0, proc.stderr
    assert "edge-1: age1" in (boot.repo / ".sops.yaml").read_text()
    # The granted app's values are in the node's store; the others are not. The node
    # serves them on its own port, under its own token store, as the bootstrap does.
    with Secrets.open(home=node, source="none", env={}) as mine:
        assert mine.load_all("console") == {"db_password": DB_PASSWORD, "api_key": API_KEY}
        assert mine.get("billing", "stripe") is None
        serving = prepare(ServeOptions(address="127.0.0.1:0"), secrets=mine,
                          out=lambda _l: None)
        thread = start_in_thread(serving)
        try:
            with TokenStore.from_home(str(node)) as tokens:
                own, _ = tokens.create(build_rules("read", apps=["console"]),
                                       display_name="app")
            assert serving.url != boot.url and serving.cert is not None
            resp = httpx.get(f"{serving.url}/v1/secret/data/macula/console/db_password",
                             headers={"X-Vault-Token": own},
                             verify=ssl.create_default_context(cafile=serving.cert))
            assert resp.json()["data"]["data"]["value"] == DB_PASSWORD
        finally:
            serving.stop()
            thread.join(timeout=15)
    token = (node / "bootstrap" / "token").read_text().strip()
    assert (node / "bootstrap" / "token").stat().st_mode & 0o777 == 0o600
    assert _read(boot, token, "console", "db_password") == 200
    assert _read(boot, token, "billing", "stripe") == 403
    # The certificate handed over is the one pinned: a Vault client can use it as its CA.
    resp = httpx.get(f"{boot.url}/v1/secret/data/macula/console/api_key",
                     headers={"X-Vault-Token": token},
                     verify=ssl.create_default_context(
                         cafile=str(node / "bootstrap" / "server.pem")))
    assert resp.json()["data"]["data"]["value"] == API_KEY
    ops = boot.audit_ops()
    assert [op for op in ops if op.startswith("join-")] == [
        "join-request", "join-proven", "join-approve", "join-deliver"]
    audit_text = (boot.home / "audit.log").read_text()
    for secret in (DB_PASSWORD, API_KEY, token, key_file.read_text().split()[-1]):
        assert secret not in audit_text

    # Removal: the token stops working and the node's key opens none of the rotated files.
    boot.cli("node", "remove", "edge-1", "--dir", str(boot.folder)).assert_ok()
    assert _read(boot, token, "console", "db_password") == 403
    for name in ("console.enc.yaml", "web.enc.json"):
        proc = run_sops(sops_bin, "decrypt", str(boot.folder / name),
                        env={"SOPS_AGE_KEY_FILE": str(key_file)})
        assert proc.returncode != 0
        proc = run_sops(sops_bin, "decrypt", str(boot.folder / name),
                        env={"SOPS_AGE_KEY_FILE": str(boot.admin_key)})
        assert proc.returncode == 0, proc.stderr
    # The node's next sync from the rotated folder fails, and says why.
    result = run_cli("sync", env={**_node_env(node), "MACULA_SECRETS_DIR": str(boot.folder),
                                  "SOPS_AGE_KEY_FILE": str(key_file)}, cwd=node)
    assert result.rc == 1 and "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("macula: error: ")]
    assert len(errors) == 2
    for line, name in zip(errors, ("console.enc.yaml", "web.enc.json"), strict=True):
        assert name in line and "no identity matches" in line


def test_configure_reads_the_granted_apps_live_from_the_bootstrap(
        boot: Bootstrap, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = tmp_path / "node"
    joining = Joining(boot, node, "edge-6", "--configure")
    code = joining.code()
    assert _pending(boot, "edge-6")["code"] == code  # listed once the node proved its key
    boot.cli("node", "approve", "edge-6", "--code", code).assert_ok()
    rc, _, err = joining.finish()
    assert rc == 0, err
    config = (node / "config.toml").read_text()
    assert 'source = "vault"' in config and boot.url in config
    # A key added on the bootstrap after the join is read through its KV v2 API.
    boot.secrets.put("console", "added_later", "live-canary-4e1d")
    with Secrets.open(env=_node_env(node)) as mine:
        assert mine.get("console", "added_later") == "live-canary-4e1d"
        with pytest.raises(PermissionDeniedError):  # its token reads the granted apps only
            mine.get("billing", "stripe")
    # Where a config file exists, --configure leaves it alone and says what to set.
    cfg = load_config({"MACULA_SECRETS_HOME": str(node)})
    assert cfg.config_file == str(node / "config.toml")
    _configure(cfg, boot.url, str(node / "bootstrap" / "token"),
               str(node / "bootstrap" / "server.pem"))
    assert (node / "config.toml").read_text() == config
    assert "exists: not changed" in capsys.readouterr().err


def test_reject_leaves_the_node_with_nothing(boot: Bootstrap, tmp_path: Path) -> None:
    node = tmp_path / "node"
    before = (boot.repo / ".sops.yaml").read_text()
    joining = Joining(boot, node, "edge-2")
    code = joining.code()
    assert _pending(boot, "edge-2")["code"] == code
    boot.cli("node", "reject", "edge-2").assert_ok()
    rc, out, err = joining.finish()
    assert rc == 1 and out == ""
    assert err.splitlines()[-1] == \
        "macula: error: the bootstrap rejected the join request of edge-2"
    assert (boot.repo / ".sops.yaml").read_text() == before
    assert not (node / "bootstrap").exists()
    with Secrets.open(home=node, source="none", env={}) as mine:
        assert mine.list("console") == []
    assert boot.cli("node", "approve", "edge-2").rc == 1  # nothing left to approve


def test_a_wrong_fingerprint_is_refused_before_anything_is_sent(boot: Bootstrap,
                                                                 tmp_path: Path) -> None:
    other = "AB:" * 31 + "CD"
    joining = Joining(boot, tmp_path / "node", "edge-3", fingerprint=other)
    rc, out, err = joining.finish()
    assert rc == 1 and out == ""
    assert "not the pinned AB:AB" in err and "nothing was sent" in err
    assert not (boot.home / "join").exists() or not [
        p for p in (boot.home / "join").iterdir() if p.suffix == ".json"]
    assert [op for op in boot.audit_ops() if op.startswith("join-")] == []


def test_traffic_holds_no_private_key_and_no_granted_value(boot: Bootstrap,
                                                           tmp_path: Path) -> None:
    node = tmp_path / "node"
    ssh_key, ssh_public = _ssh_key(tmp_path, "host_key")
    wire: list[tuple[str, bytes]] = []
    codes: list[str] = []
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["outcome"] = join(
                boot.url, name="edge-4", fingerprint=boot.fingerprint, home=str(node),
                ssh_key=str(ssh_key), poll=0.05, timeout=WAIT,
                open_secrets=lambda: Secrets.open(home=node, source="none", env={}),
                wire=lambda direction, data: wire.append((direction, data)),
                on_code=codes.append)
        except Exception as exc:  # reported by the assertion below
            done["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    while not codes and thread.is_alive():
        time.sleep(0.02)
    assert "error" not in done, done
    request = _pending(boot, "edge-4")
    assert request["recipient"] == ssh_public
    boot.cli("node", "approve", "edge-4", "--code", request["code"]).assert_ok()
    thread.join(timeout=WAIT)
    assert "error" not in done, done
    assert codes == [request["code"]]
    assert done["outcome"].applied.values == {"console": 2}
    sent = b"".join(data for direction, data in wire if direction == "sent")
    received = b"".join(data for direction, data in wire if direction == "received")
    assert b'"recipient": "ssh-ed25519 ' in sent  # the hook saw the request itself
    assert b"-----BEGIN AGE ENCRYPTED FILE-----" in received  # and the sealed grant
    private = ssh_key.read_bytes()
    body = b"".join(private.splitlines()[1:-1])
    token = (node / "bootstrap" / "token").read_bytes().strip()
    for secret in (body, body[:40], base64.b64decode(body)[-64:], DB_PASSWORD.encode(),
                   API_KEY.encode(), token, b"PRIVATE KEY", b"AGE-SECRET-KEY"):
        assert secret not in sent + received


def test_two_of_three_approvers(tmp_path: Path, sops_bin: str) -> None:
    keys = tmp_path / "approvers"
    keys.mkdir()
    alice_key, alice = _identity(keys, "alice")
    bob_key, bob = _ssh_key(keys, "bob_ed25519")
    _, carol = _identity(keys, "carol")
    mesh = (f'approvals = 2\n[mesh.approvers]\nalice = "{alice}"\nbob = "{bob}"\n'
            f'carol = "{carol}"\n')
    for boot in _start(tmp_path, sops_bin, mesh):
        node = tmp_path / "node"
        joining = Joining(boot, node, "edge-5")
        code = joining.code()
        assert _pending(boot, "edge-5")["approvers"] == ["alice", "bob", "carol"]
        # An approval without an approver, or with someone else's key, counts for nothing.
        assert boot.cli("node", "approve", "edge-5").rc == 1
        wrong = boot.cli("node", "approve", "edge-5", "--approver", "carol",
                         "--identity", str(alice_key))
        assert wrong.rc == 1, wrong.err
        boot.cli("node", "approve", "edge-5", "--code", code, "--approver", "alice",
                 "--identity", str(alice_key)).assert_ok()
        again = boot.cli("node", "approve", "edge-5", "--approver", "alice",
                         "--identity", str(alice_key))
        assert again.rc == 1 and "approved edge-5's request already" in again.err
        after_one = _pending(boot, "edge-5")
        assert after_one["approvals"] == ["alice"] and after_one["required"] == 2
        assert joining.proc.poll() is None  # still waiting
        assert "edge-5" not in (boot.repo / ".sops.yaml").read_text()
        boot.cli("node", "approve", "edge-5", "--approver", "bob",
                 "--identity", str(bob_key)).assert_ok()
        rc, _, err = joining.finish()
        assert rc == 0, err
        with Secrets.open(home=node, source="none", env={}) as mine:
            assert mine.get("console", "db_password") == DB_PASSWORD
        approvals = [json.loads(line) for line in
                     (boot.home / "audit.log").read_text().splitlines()
                     if json.loads(line)["op"] == "join-approve"]
        assert [(a["approver"], a["complete"]) for a in approvals] == [
            ("alice", False), ("bob", True)]


def test_cli_errors_are_one_line(boot: Bootstrap, tmp_path: Path) -> None:
    env = _node_env(tmp_path / "node")
    for args, expected in [
        (("join", "http://127.0.0.1:1", "--name", "x", "--fingerprint", boot.fingerprint),
         "the bootstrap address must be https://HOST:PORT"),
        (("join", boot.url, "--name", "x", "--fingerprint", "nope"),
         "a certificate fingerprint is 32 bytes of hex"),
        (("join", boot.url, "--name", "bad name", "--fingerprint", boot.fingerprint,
          "--timeout", "1"), "the bootstrap refused: the node name must be"),
    ]:
        result = run_cli(*args, env=env, cwd=tmp_path)
        assert expected in result.assert_one_error(1), result.err
    assert "no pending join request of ghost" in boot.cli(
        "node", "approve", "ghost").assert_one_error(1)


