"""``sync``, the CLI and tenants (namespaces) with ``source = "vault"``, against OpenBao.

One in-memory dev server serves the module. Tests that look at everything
Vault has (``sync`` reports) work in a namespace of their own, so the
other tests' apps do not show up in them.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from macula_secrets import Secrets
from macula_secrets.errors import UnavailableError
from macula_secrets.records import AppSync
from tests._openbao import Server, free_port
from tests.cli._support import run_cli, run_proc

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def bao(bao_dev: Server) -> Server:
    return bao_dev


def _name(prefix: str = "t") -> str:
    return prefix + uuid.uuid4().hex[:10]


def _call(bao: Server, method: str, path: str, body: dict[str, Any] | None = None, *,
          namespace: str | None = None) -> tuple[int, dict[str, Any]]:
    """A raw request with the root token (and ``X-Vault-Namespace``): (status, JSON or {})."""
    return bao.request(method, path, body, check=False, namespace=namespace)


def _namespace(bao: Server, name: str, *, parent: str | None = None) -> str:
    """Create namespace ``name`` (under ``parent``) with KV v2 at ``secret/``; its full path."""
    status, body = _call(bao, "POST", f"/v1/sys/namespaces/{name}", namespace=parent)
    assert status == 200, body
    full = f"{parent}/{name}" if parent else name
    status, body = _call(bao, "POST", "/v1/sys/mounts/secret",
                         {"type": "kv", "options": {"version": "2"}}, namespace=full)
    assert status == 204, body
    return full


def _write(bao: Server, app: str, key: str, value: str, *, namespace: str | None = None
           ) -> None:
    status, body = _call(bao, "POST", f"/v1/secret/data/macula/{app}/{key}",
                         {"data": {"value": value}}, namespace=namespace)
    assert status == 200, body


def _read(bao: Server, app: str, key: str, *, namespace: str | None = None) -> str | None:
    status, body = _call(bao, "GET", f"/v1/secret/data/macula/{app}/{key}",
                         namespace=namespace)
    if status == 404:
        return None
    assert status == 200, body
    value: str = body["data"]["data"]["value"]
    return value


def _open(bao: Server, home: Path, *, address: str | None = None, tenant: str | None = None,
          **vault: object) -> Secrets:
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[vault]"] + [f"{k} = {json.dumps(v)}" for k, v in vault.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    env = {"VAULT_ADDR": address or bao.address, "VAULT_TOKEN": bao.token}
    return Secrets.open(home=home, source="vault", tenant=tenant, env=env)


def _by_app(apps: tuple[AppSync, ...]) -> dict[str, AppSync]:
    return {a.app: a for a in apps}


def _snapshot(secrets: Secrets, tenant: str = "default") -> tuple[object, ...]:
    store = secrets.store
    apps = store.list_apps(tenant)
    return (store.last_change(), apps,
            {a: store.load_all(tenant, a) for a in apps},
            {a: store.list_keys(tenant, a, include_deleted=True) for a in apps})


# -- Secrets.sync ----------------------------------------------------------------------


def test_sync_pulls_every_app_and_follows_vault(bao: Server, tmp_path: Path) -> None:
    ns = _namespace(bao, _name("ns"))
    _write(bao, "web", "a", "1", namespace=ns)
    _write(bao, "web", "b", "2", namespace=ns)
    _write(bao, "api", "c", "3", namespace=ns)
    with _open(bao, tmp_path / "home", namespace=ns) as secrets:
        secrets.store.put("default", "web", "local", "by hand")  # not Vault's: left alone
        calls: list[tuple[int, int]] = []
        report = secrets.sync(progress=lambda done, total: calls.append((done, total)))
        assert calls == [(0, 2), (1, 2), (2, 2)]
        assert report.errors == [] and report.changed_anything
        assert report.apps == (
            AppSync(app="api", source=f"{ns}/secret/macula/api/", added=("c",)),
            AppSync(app="web", source=f"{ns}/secret/macula/web/", added=("a", "b")),
        )
        assert secrets.store.load_all("default", "web") == {"a": "1", "b": "2",
                                                            "local": "by hand"}
        assert secrets.store.origins("default", "api") == {("api", "c"): "vault"}

        again = secrets.sync()
        assert not again.changed_anything
        assert [(a.app, a.unchanged) for a in again.apps] == [("api", 1), ("web", 2)]

        _write(bao, "web", "a", "1 changed", namespace=ns)
        _write(bao, "web", "d", "4", namespace=ns)
        _call(bao, "DELETE", "/v1/secret/data/macula/web/b", namespace=ns)  # soft delete
        _call(bao, "DELETE", "/v1/secret/metadata/macula/api/c", namespace=ns)  # app gone
        report = secrets.sync()
        assert report.apps == (
            AppSync(app="web", source=f"{ns}/secret/macula/web/", added=("d",),
                    changed=("a",), deleted=("b",)),
            AppSync(app="api", source="(removed from vault)", deleted=("c",)),
        )
        assert secrets.store.load_all("default", "web") == {"a": "1 changed", "d": "4",
                                                            "local": "by hand"}
        assert secrets.store.list_keys("default", "api") == []
        assert [v.state for v in secrets.store.history("default", "api", "c")] == ["deleted"]
        # What sync confirmed is served without asking Vault again (refresh = 30 s).
        assert secrets.get("web", "a") == "1 changed"
        assert not secrets.sync().changed_anything


def test_sync_while_vault_is_unreachable_changes_nothing(bao: Server, tmp_path: Path) -> None:
    ns = _namespace(bao, _name("ns"))
    _write(bao, "web", "a", "1", namespace=ns)
    home = tmp_path / "home"
    with _open(bao, home, namespace=ns) as secrets:
        secrets.sync()
        before = _snapshot(secrets)
    _write(bao, "web", "a", "2", namespace=ns)
    dead = f"http://127.0.0.1:{free_port()}"
    with _open(bao, home, address=dead, namespace=ns, max_attempts=1, timeout=2) as secrets:
        with pytest.raises(UnavailableError, match="cannot reach vault"):
            secrets.sync()
        assert _snapshot(secrets) == before

    # Vault failing after some apps were read: none of them is applied.
    _write(bao, "api", "c", "3", namespace=ns)
    with _open(bao, home, namespace=ns) as secrets:
        assert secrets.vault is not None
        backend = secrets.vault.backend
        real = backend.load_all

        def load_all(app: str) -> dict[str, str]:
            if app == "web":
                raise UnavailableError("vault is sealed")
            return real(app)

        backend.load_all = load_all  # type: ignore[method-assign]
        with pytest.raises(UnavailableError, match="sealed"):
            secrets.sync()
        assert _snapshot(secrets) == before
        backend.load_all = real  # type: ignore[method-assign]
        report = secrets.sync()
        assert [(a.app, a.added, a.changed) for a in report.apps] == [
            ("api", ("c",), ()), ("web", (), ("a",))]


def test_sync_reports_an_app_vault_refuses_and_syncs_the_others(bao: Server,
                                                                 tmp_path: Path) -> None:
    ns = _namespace(bao, _name("ns"))
    _write(bao, "web", "a", "1", namespace=ns)
    _write(bao, "api", "c", "3", namespace=ns)
    # A real token whose policy may list every app but read only web's keys.
    policy = ('path "secret/metadata/macula/*" { capabilities = ["list"] }\n'
              'path "secret/data/macula/web/*" { capabilities = ["read"] }\n')
    status, body = _call(bao, "PUT", "/v1/sys/policies/acl/web-only", {"policy": policy},
                         namespace=ns)
    assert status == 204, body
    status, body = _call(bao, "POST", "/v1/auth/token/create",
                         {"policies": ["web-only"], "ttl": "10m"}, namespace=ns)
    assert status == 200, body
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f"[vault]\nnamespace = {json.dumps(ns)}\n")
    env = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": body["auth"]["client_token"]}
    with Secrets.open(home=home, source="vault", env=env) as secrets:
        report = secrets.sync()
    apps = _by_app(report.apps)
    assert "permission denied" in (apps["api"].error or "")
    assert apps["web"].added == ("a",)
    assert [a.app for a in report.errors] == ["api"]


# -- the command line ------------------------------------------------------------------


def _env(bao: Server, home: Path, *, address: str | None = None) -> dict[str, str]:
    return {"MACULA_SECRETS_SOURCE": "vault", "MACULA_SECRETS_HOME": str(home),
            "VAULT_ADDR": address or bao.address, "VAULT_TOKEN": bao.token,
            "MACULA_SECRETS_CONFIG": "", "MACULA_SECRETS_DIR": "", "MACULA_SECRETS_TENANT": ""}


def test_cli_store_commands_with_a_vault_source(bao: Server, tmp_path: Path) -> None:
    app = _name()
    home = tmp_path / "home"
    env = _env(bao, home)

    def cli(*args: str, input: bytes = b"") -> Any:
        return run_cli(*args, env=env, cwd=tmp_path, input=input)

    _write(bao, app, "k1", "v1")
    out = cli("sync").assert_ok().text
    assert f"{app}: 1 added, 0 changed, 0 deleted, 0 unchanged\n" in out
    assert f"{app}: up to date (1 keys)\n" in cli("sync").assert_ok().text
    entries = {e["app"]: e for e in json.loads(cli("sync", "--json").assert_ok().text)}
    assert entries[app] == {"app": app, "source": f"secret/macula/{app}/", "added": [],
                            "changed": [], "deleted": [], "unchanged": 1, "error": None}

    assert cli("get", app, "k1").assert_ok().text == "v1\n"
    assert cli("put", app, "k2", "v2").assert_ok().text == f"{app}/k2: version 1\n"
    assert cli("put", app, "k2", input=b"v2b\n").assert_ok().text == f"{app}/k2: version 2\n"
    assert _read(bao, app, "k2") == "v2b"
    assert cli("put", app, "k2", "late", "--cas", "1").assert_one_error().startswith(
        "macula: error: ")
    assert cli("list", app).assert_ok().text == "k1\nk2\n"
    assert app in cli("list").assert_ok().text.splitlines()
    assert json.loads(cli("list", app, "--json").assert_ok().text) == ["k1", "k2"]
    history = json.loads(cli("history", app, "k2", "--json").assert_ok().text)
    assert [(h["version"], h["current"]) for h in history] == [(1, False), (2, True)]
    assert cli("get", app, "k2", "--version", "1").assert_ok().text == "v2\n"
    assert cli("rollback", app, "k2", "1").assert_ok().text.startswith(f"{app}/k2: version 3")
    assert _read(bao, app, "k2") == "v2"

    cli("delete", app, "k1").assert_ok()
    assert _read(bao, app, "k1") is None
    line = cli("get", app, "k1").assert_one_error()
    assert f"secret {app}/k1 not found" in line and "vault at" in line
    assert cli("list", app).assert_ok().text == "k2\n"
    assert cli("list", app, "--all").assert_ok().text == "k1\nk2\n"
    cli("undelete", app, "k1").assert_ok()
    assert cli("get", app, "k1").assert_ok().text == "v1\n"

    # Keys removed in Vault leave the store with the next sync.
    _call(bao, "DELETE", f"/v1/secret/data/macula/{app}/k1")
    out = cli("sync").assert_ok().text
    assert f"{app}: 0 added, 0 changed, 1 deleted, 1 unchanged\n" in out

    # run: the app's keys as environment variables (a real process, as run execs).
    code = "import os; print(os.environ['K2'], 'K1' in os.environ)"
    full = {k: v for k, v in _env(bao, home).items() if v}
    proc = run_proc("run", "--app", app, "--", sys.executable, "-c", code,
                    env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **full}, cwd=tmp_path)
    assert proc.assert_ok().text == "v2 False\n"


def test_cli_with_vault_unreachable(bao: Server, tmp_path: Path) -> None:
    app = _name()
    home = tmp_path / "home"
    _write(bao, app, "k", "v")
    run_cli("sync", env=_env(bao, home), cwd=tmp_path).assert_ok()
    with Secrets.open(home=home, source="none") as plain:
        before = _snapshot(plain)
    env = _env(bao, home, address=f"http://127.0.0.1:{free_port()}")
    line = run_cli("sync", env=env, cwd=tmp_path).assert_one_error(rc=1)
    assert "cannot reach vault at http://127.0.0.1:" in line
    line = run_cli("put", app, "k", "new", env=env, cwd=tmp_path).assert_one_error(rc=1)
    assert "cannot reach vault" in line
    line = run_cli("get", app, "never", env=env, cwd=tmp_path).assert_one_error(rc=1)
    assert f"no cached copy of {app}/never" in line
    # Within max_stale (an hour) the cached value is still served.
    assert run_cli("get", app, "k", env=env, cwd=tmp_path).assert_ok().text == "v\n"
    listed = run_cli("list", env=env, cwd=tmp_path).assert_ok()
    assert app in listed.text.splitlines() and "unreachable" in listed.err
    with Secrets.open(home=home, source="none") as plain:
        after = _snapshot(plain)
    assert after == before


# -- tenants are namespaces ------------------------------------------------------------


def test_tenants_are_namespaces(bao: Server, tmp_path: Path) -> None:
    ta, tb, app = _name("ta"), _name("tb"), _name()
    _namespace(bao, ta)
    _namespace(bao, tb)
    home = tmp_path / "home"
    with _open(bao, home, refresh=0) as secrets:  # every read asks Vault
        a = secrets.with_tenant(ta)
        b = secrets.with_tenant(tb)
        assert a.tenant == ta and a.vault is not None and a.vault.backend.namespace == ta
        assert secrets.vault is not None and secrets.vault.backend.namespace is None
        assert secrets.with_tenant(ta).vault is a.vault  # one backend per tenant
        assert a.with_tenant("default").vault is secrets.vault

        assert a.put(app, "k", "in a") == 1
        assert _read(bao, app, "k", namespace=ta) == "in a"
        assert _read(bao, app, "k") is None
        assert _read(bao, app, "k", namespace=tb) is None
        assert b.get(app, "k") is None
        assert secrets.get(app, "k") is None
        assert a.get(app, "k") == "in a"
        assert secrets.store.lookup(ta, app, "k") == "in a"
        assert secrets.store.list_keys(tb, app) == []
        assert secrets.store.list_keys("default", app) == []

        _write(bao, app, "k", "in b", namespace=tb)
        assert b.get(app, "k") == "in b"
        assert a.get(app, "k") == "in a"
        assert b.load_all(app) == {"k": "in b"}
        report = b.sync()
        assert [(x.app, x.source, x.unchanged) for x in report.apps] == [
            (app, f"{tb}/secret/macula/{app}/", 1)]
        assert [x.app for x in a.sync().apps] == [app]
        assert a.history(app, "k")[0].version == 1

        closed: list[str | None] = []
        for view in (a, b, secrets):
            assert view.vault is not None
            backend = view.vault.backend
            real = backend.close

            def close(real: Any = real, ns: str | None = backend.namespace) -> None:
                closed.append(ns)
                real()

            backend.close = close  # type: ignore[method-assign]
        a.close()  # a view: closes nothing
        assert closed == []
    assert sorted(closed, key=str) == sorted([ta, tb, None], key=str)

    # Secrets.open(tenant=...), --tenant and MACULA_SECRETS_TENANT select the namespace.
    with _open(bao, home, tenant=ta) as secrets:
        assert secrets.vault is not None and secrets.vault.backend.namespace == ta
        assert secrets.get(app, "k") == "in a"
    env = _env(bao, home)
    assert run_cli("get", app, "k", "--tenant", tb, env=env,
                   cwd=tmp_path).assert_ok().text == "in b\n"
    assert run_cli("get", app, "k", env={**env, "MACULA_SECRETS_TENANT": ta},
                   cwd=tmp_path).assert_ok().text == "in a\n"
    run_cli("put", app, "k2", "cli", "--tenant", tb, env=env, cwd=tmp_path).assert_ok()
    assert _read(bao, app, "k2", namespace=tb) == "cli"
    assert _read(bao, app, "k2", namespace=ta) is None
    assert run_cli("list", "--tenant", tb, env=env, cwd=tmp_path).assert_ok().text == f"{app}\n"


def test_tenant_namespaces_nest_under_the_configured_namespace(bao: Server,
                                                               tmp_path: Path) -> None:
    org, tenant, app = _name("org"), _name("tx"), _name()
    _namespace(bao, org)
    nested = _namespace(bao, tenant, parent=org)
    assert nested == f"{org}/{tenant}"
    with _open(bao, tmp_path / "home", namespace=org) as secrets:
        assert secrets.vault is not None and secrets.vault.backend.namespace == org
        view = secrets.with_tenant(tenant)
        assert view.vault is not None and view.vault.backend.namespace == nested
        view.put(app, "k", "nested")
        secrets.put(app, "k", "org")
        assert _read(bao, app, "k", namespace=nested) == "nested"
        assert _read(bao, app, "k", namespace=org) == "org"
        assert _read(bao, app, "k") is None
        assert view.get(app, "k") == "nested" and secrets.get(app, "k") == "org"


def test_with_tenant_without_open_settings_is_refused(bao: Server, tmp_path: Path) -> None:
    from macula_secrets._vaultsource import VaultSource
    from macula_secrets.backends.vault import VaultBackend
    from macula_secrets.errors import ConfigError

    with _open(bao, tmp_path / "home") as opened:
        backend = VaultBackend(bao.address, token=bao.token)
        bare = Secrets(opened.store, vault=VaultSource(backend))  # not closed: opened is
        assert bare.with_tenant("default").vault is bare.vault
        with pytest.raises(ConfigError, match="another tenant's namespace"):
            bare.with_tenant("other")
        backend.close()
