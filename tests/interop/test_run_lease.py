"""``run --lease NAME=PATH`` against a real OpenBao (database engine) and PostgreSQL.

The console script runs as a real process with a vault source; its child is
a small Python script that logs in to PostgreSQL with ``$DB_USERNAME`` and
``$DB_PASSWORD``. What must hold, and what a broken ``run`` would get wrong:

- the child's credential works, and keeps working past the lease's first
  TTL (3 s) while the child runs: only renewal keeps the role alive;
- when the child ends (by itself, or after a SIGTERM sent to ``run``) the
  lease is revoked: OpenBao has no lease left under the role and the
  PostgreSQL role is gone (a ``run`` that exits without revoking leaves both
  until the TTL);
- the child's exit status is ``run``'s, and no credential or lease id is
  shown on ``run``'s stdout or stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests._dbengine import configure, login, lookup, role_exists
from tests._openbao import Server
from tests._postgres import Postgres
from tests.cli._support import MACULA_BIN, run_cli

pytestmark = pytest.mark.interop

WAIT = 15.0

# Logs in with the lease's variables, records what it saw, then exits with
# the status given, or (with "wait") waits for SIGTERM and exits 7.
CHILD = """\
import json, os, signal, sys, time
import psycopg
out, mode = sys.argv[1], sys.argv[2]
user, password = os.environ["DB_USERNAME"], os.environ["DB_PASSWORD"]
with psycopg.connect(host="127.0.0.1", port=int(os.environ["PG_PORT"]), dbname="postgres",
                     user=user, password=password, connect_timeout=5) as conn:
    current = conn.execute("SELECT current_user").fetchone()[0]
names = sorted(k for k in os.environ if k.startswith("DB_"))
info = {"username": user, "password": password, "current_user": current, "names": names}
with open(os.path.join(out, "ready.tmp"), "w") as f:
    json.dump(info, f)
os.replace(os.path.join(out, "ready.tmp"), os.path.join(out, "ready"))
print("child-connected", flush=True)
if mode != "wait":
    sys.exit(int(mode))
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
for _ in range(3000):  # a minute at most, should the test fail before signalling
    time.sleep(0.02)
sys.exit(99)
"""


@pytest.fixture(scope="module")
def bao(bao_dev: Server, pg: Postgres) -> Server:
    # One role per test, so each can count the leases OpenBao has under its own.
    roles = ("exits", "term", "missing", "reissue", "listed", "withdir")
    configure(bao_dev, pg, {name: ("3s", "60s") for name in roles})
    return bao_dev


@pytest.fixture
def env(bao: Server, pg: Postgres, tmp_path: Path) -> dict[str, str]:
    """The console script's environment: a home whose source is ``bao``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('source = "vault"\n[vault]\nrefresh = 30\n')
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MACULA_", "VAULT_", "DB_"))}
    return {**base, "MACULA_SECRETS_HOME": str(home), "VAULT_ADDR": bao.address,
            "VAULT_TOKEN": bao.token, "PG_PORT": str(pg.port)}


@pytest.fixture
def child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    (tmp_path / "out").mkdir()
    return script


def leases_of(bao: Server, role: str) -> list[str]:
    """The lease ids OpenBao holds for ``database/creds/ROLE`` (LIST sys/leases/lookup)."""
    status, body = bao.request("LIST", f"/v1/sys/leases/lookup/database/creds/{role}/",
                               check=False)
    if status == 404:
        return []
    assert status == 200, (status, body)
    return [f"database/creds/{role}/{key}" for key in body["data"]["keys"]]


def start_run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([MACULA_BIN, "run", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ready(out: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while not (out / "ready").exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"run ended early ({proc.returncode}): {err.decode()}")
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    info: dict[str, Any] = json.loads((out / "ready").read_text())
    return info


def assert_revoked(bao: Server, pg: Postgres, role: str, info: dict[str, Any],
                   lease_ids: list[str]) -> None:
    assert leases_of(bao, role) == []
    for lease_id in lease_ids:
        assert lookup(bao, lease_id) == 400
    assert not role_exists(pg, info["username"])
    with pytest.raises(psycopg.OperationalError):
        login(pg, info)


def assert_nothing_shown(out: bytes, err: bytes, info: dict[str, Any],
                         lease_ids: list[str]) -> None:
    text = out.decode() + err.decode()
    for secret in (info["password"], info["username"], *lease_ids):
        assert secret not in text


def test_child_logs_in_and_the_lease_is_revoked_when_it_exits(
        bao: Server, pg: Postgres, env: dict[str, str], child: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert leases_of(bao, "exits") == []
    proc = start_run(env, tmp_path, "--lease", "DB=database/creds/exits", "--",
                     sys.executable, str(child), str(out), "3")
    stdout, stderr = proc.communicate(timeout=60)
    info = json.loads((out / "ready").read_text())
    assert proc.returncode == 3, stderr.decode()
    assert stdout == b"child-connected\n"
    assert stderr == b""
    assert info["current_user"] == info["username"]
    assert info["username"].startswith("v-")
    assert info["names"] == ["DB_PASSWORD", "DB_USERNAME"]
    assert_revoked(bao, pg, "exits", info, [])
    assert_nothing_shown(stdout, stderr, info, [])


def test_sigterm_to_run_ends_the_child_and_revokes_the_lease(
        bao: Server, pg: Postgres, env: dict[str, str], child: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_run(env, tmp_path, "--lease", "DB=database/creds/term", "--",
                     sys.executable, str(child), str(out), "wait")
    try:
        info = wait_ready(out, proc)
        lease_ids = leases_of(bao, "term")
        assert len(lease_ids) == 1
        assert lookup(bao, lease_ids[0]) == 200
        # Past the first TTL (3 s): without renewal OpenBao would drop the role.
        time.sleep(4.5)
        assert proc.poll() is None
        assert leases_of(bao, "term") == lease_ids
        assert login(pg, info) == info["username"]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # The child trapped the forwarded SIGTERM and exited 7: run's status.
    assert proc.returncode == 7, stderr.decode()
    assert stdout == b"child-connected\n"
    assert stderr == b""
    assert_revoked(bao, pg, "term", info, lease_ids)
    assert_nothing_shown(stdout, stderr, info, lease_ids)


def test_a_reissued_lease_is_reported_and_revoked_at_the_end(
        bao: Server, pg: Postgres, env: dict[str, str], child: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_run(env, tmp_path, "--lease", "DB=database/creds/reissue", "--",
                     sys.executable, str(child), str(out), "wait")
    try:
        info = wait_ready(out, proc)
        [first] = leases_of(bao, "reissue")
        # Revoked from outside: the next renewal is refused and a new lease is read.
        bao.request("PUT", "/v1/sys/leases/revoke", {"lease_id": first})
        deadline = time.monotonic() + WAIT
        while not (ids := leases_of(bao, "reissue")):
            assert time.monotonic() < deadline, "no new lease was read"
            time.sleep(0.1)
        assert first not in ids
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 7
    err = stderr.decode()
    assert err == ("macula: warning: --lease DB (database/creds/reissue) has a new credential "
                   "(renewal was refused or the lease reached its max TTL); CMD keeps the "
                   "previous one, which stops working when its lease ends: restart CMD to "
                   "use the new one\n")
    # The new lease was revoked at the end too.
    assert leases_of(bao, "reissue") == []
    assert lookup(bao, ids[0]) == 400
    assert_nothing_shown(stdout, stderr, info, [first, *ids])


def test_lease_with_credentials_dir(bao: Server, env: dict[str, str], tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    check = ("import os, sys; d = os.environ['CREDENTIALS_DIRECTORY']; "
             "sys.exit(5 if os.path.isdir(d) and os.environ['DB_USERNAME'] else 1)")
    proc = start_run(env, tmp_path, "--lease", "DB=database/creds/withdir",
                     "--credentials-dir", str(creds), "--", sys.executable, "-c", check)
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stdout, stderr) == (5, b"", b"")
    assert not creds.exists()
    assert leases_of(bao, "withdir") == []


def test_a_command_that_cannot_start_leaves_no_lease(
        bao: Server, env: dict[str, str], tmp_path: Path) -> None:
    proc = start_run(env, tmp_path, "--lease", "DB=database/creds/missing", "--",
                     str(tmp_path / "no-such-command"))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert stdout == b""
    assert stderr.decode().startswith("macula: error: command not found: ")
    assert leases_of(bao, "missing") == []


def issue(bao: Server, role: str) -> dict[str, Any]:
    """Read a credential as root: ``{"lease_id": ..., "data": {...}}``."""
    _, body = bao.request("GET", f"/v1/database/creds/{role}")
    return body


def test_leases_list_and_revoke(bao: Server, pg: Postgres, env: dict[str, str],
                                tmp_path: Path) -> None:
    first, second = issue(bao, "listed"), issue(bao, "listed")
    ids = sorted([first["lease_id"], second["lease_id"]])
    assert sorted(leases_of(bao, "listed")) == ids

    full = run_cli("leases", "list", "database/creds/listed", "--json", "--full-ids",
                   env=env, cwd=tmp_path)
    assert (full.rc, full.err) == (0, "")
    assert json.loads(full.out) == ids
    # Shortened by default; the walk goes down from a shorter prefix.
    short = run_cli("leases", "list", "database/", env=env, cwd=tmp_path)
    assert (short.rc, short.err) == (0, "")
    lines = short.text.splitlines()
    for lease_id in ids:
        shown = f"{lease_id[:lease_id.rindex('/') + 5]}…"
        assert shown in lines
        assert lease_id not in short.text
    none = run_cli("leases", "list", "database/creds/nothing-here", env=env, cwd=tmp_path)
    assert (none.rc, none.out, none.err) == (0, b"", "")
    # --long looks each lease up: its TTL (3 s roles), expiry after issue, renewable.
    long = run_cli("leases", "list", "database/creds/listed", "--long", "--json",
                   env=env, cwd=tmp_path)
    assert (long.rc, long.err) == (0, "")
    infos = json.loads(long.out)
    assert [i["lease_id"] for i in infos] == [f"{x[:x.rindex('/') + 5]}…" for x in ids]
    for info in infos:
        assert info["path"] == "database/creds/listed" and info["renewable"] is True
        assert 0 <= info["ttl"] <= 3
        assert info["issued_at"] < info["expires_at"] and info["last_renewal"] is None
    table = run_cli("leases", "list", "database/creds/listed", "-l", env=env, cwd=tmp_path)
    header, *rows = table.text.splitlines()
    assert header.split() == ["LEASE", "TTL", "EXPIRES", "RENEWABLE", "LAST", "RENEWAL"]
    assert [row.split()[0] for row in rows] == [i["lease_id"] for i in infos]
    for secret in (first["data"]["password"], second["data"]["password"], *ids):
        assert secret not in long.text + table.text

    one = run_cli("leases", "revoke", first["lease_id"], env=env, cwd=tmp_path)
    assert one.rc == 0, one.err
    assert first["lease_id"] not in one.err and one.err.startswith("macula: revoked ")
    assert lookup(bao, first["lease_id"]) == 400
    assert lookup(bao, second["lease_id"]) == 200
    assert not role_exists(pg, first["data"]["username"])
    assert login(pg, second["data"]) == second["data"]["username"]

    everything = run_cli("leases", "revoke", "--prefix", "database/creds/listed", env=env,
                         cwd=tmp_path)
    assert everything.rc == 0, everything.err
    assert everything.err == "macula: revoked the leases under database/creds/listed\n"
    assert leases_of(bao, "listed") == []
    assert not role_exists(pg, second["data"]["username"])

    neither = run_cli("leases", "revoke", env=env, cwd=tmp_path)
    assert neither.rc == 2
    assert neither.err.startswith("macula: error: give a LEASE_ID or --prefix PREFIX\n")


def test_leases_without_a_vault_source_is_an_error(tmp_path: Path) -> None:
    env = {"MACULA_SECRETS_HOME": str(tmp_path / "home"), "MACULA_SECRETS_CONFIG": "",
           "MACULA_SECRETS_SOURCE": "", "MACULA_SECRETS_DIR": "", "VAULT_ADDR": ""}
    result = run_cli("leases", "list", env=env, cwd=tmp_path)
    assert "leases need a vault source" in result.assert_one_error(1)


def test_lease_without_a_vault_source_is_an_error(tmp_path: Path) -> None:
    env = {"MACULA_SECRETS_HOME": str(tmp_path / "home"), "MACULA_SECRETS_CONFIG": "",
           "MACULA_SECRETS_SOURCE": "", "MACULA_SECRETS_DIR": "", "VAULT_ADDR": ""}
    result = run_cli("run", "--lease", "DB=database/creds/exits", "--", "true", env=env,
                     cwd=tmp_path)
    line = result.assert_one_error(1)
    assert "leases need a vault source" in line


@pytest.mark.parametrize(("args", "message"), [
    (["--", "true"], "give --app, --lease or both"),
    (["--lease", "DB=database/creds/x", "--only", "k", "--", "true"],
     "--only goes with --app"),
    (["--lease", "DB", "--", "true"], "expected NAME=PATH"),
    (["--lease", "1DB=database/creds/x", "--", "true"], "cannot start an environment"),
    (["--lease", "DB=database/creds/x", "--lease", "DB=database/creds/y", "--", "true"],
     "--lease DB is given twice"),
    (["--lease", "DB=database/creds/x", "--format", "json"],
     "--format and --lease do not go together"),
])
def test_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    env = {"MACULA_SECRETS_HOME": str(tmp_path / "home"), "MACULA_SECRETS_CONFIG": ""}
    result = run_cli("run", *args, env=env, cwd=tmp_path)
    assert result.rc == 2, result.err
    assert message in result.err
    assert result.out == b""
