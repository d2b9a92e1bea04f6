"""The real ``bao`` CLI (OpenBao 2.7.2), unchanged, over TLS with BAO_CACERT."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests._openbao import OpenBaoError, binary

from .conftest import ROOT, Running

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def bao() -> str:
    try:
        return binary()
    except OpenBaoError as exc:
        pytest.skip(f"bao is not installed: {exc}")


def run(bao: str, server: Running, *args: str, token: str = ROOT
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_"))}
    assert server.cert is not None
    env.update(BAO_ADDR=server.url, BAO_TOKEN=token, BAO_CACERT=server.cert)
    return subprocess.run([bao, *args], env=env, capture_output=True, text=True, timeout=30,
                          check=False)


def test_kv_commands(bao: str, server: Running) -> None:
    put = run(bao, server, "kv", "put", "-mount=secret", "macula/console/db", "value=s3cret")
    assert put.returncode == 0, put.stderr
    assert "version" in put.stdout
    got = run(bao, server, "kv", "get", "-mount=secret", "-field=value", "macula/console/db")
    assert (got.returncode, got.stdout, got.stderr) == (0, "s3cret", "")
    listed = run(bao, server, "kv", "list", "-mount=secret", "macula/console")
    assert listed.returncode == 0 and "db" in listed.stdout.split(), listed.stderr
    apps = run(bao, server, "kv", "list", "-mount=secret", "macula")
    assert apps.returncode == 0 and "console/" in apps.stdout.split(), apps.stderr
    meta = run(bao, server, "kv", "metadata", "get", "-mount=secret", "macula/console/db")
    assert meta.returncode == 0 and "current_version" in meta.stdout, meta.stderr
    deleted = run(bao, server, "kv", "delete", "-mount=secret", "macula/console/db")
    assert deleted.returncode == 0, deleted.stderr
    gone = run(bao, server, "kv", "get", "-mount=secret", "-field=value", "macula/console/db")
    assert gone.returncode != 0
    assert server.secrets.get("console", "db") is None


def test_wrong_token_is_refused(bao: str, server: Running) -> None:
    denied = run(bao, server, "kv", "get", "-mount=secret", "macula/console/db",
                 token="s.wrong")
    assert denied.returncode != 0
    assert "permission denied" in denied.stderr
