"""Dynamic database credentials (``leases.py``) against a real OpenBao and PostgreSQL.

OpenBao's database secrets engine (the builtin ``postgresql-database-plugin``)
makes a PostgreSQL role for each read of ``database/creds/<role>`` and drops
it when the lease is revoked or runs out. What must hold, and what a broken
keeper would get wrong:

- renewal keeps the credential working past its first TTL (without it the
  role's ``VALID UNTIL`` passes and OpenBao drops the role at 4 s);
- a lease revoked behind the keeper's back is noticed and replaced, the
  subscriber hears of it, the new credential logs in and the old one no
  longer does (a keeper that ignores renewal errors keeps a dead credential);
- at the role's ``max_ttl`` a new credential is issued before the old one
  ends (a keeper that only renews would hand out a dead one);
- with OpenBao gone, the last credential is served until its lease expires,
  then ``get()`` raises ``UnavailableError``; no credential or whole lease
  id ever reaches a repr, an error or the log.

TTLs are seconds long so the module runs in about half a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import psycopg
import pytest

from macula_secrets import Secrets
from macula_secrets.backends.vault import RetryPolicy, VaultBackend
from macula_secrets.errors import UnavailableError
from macula_secrets.leases import Lease, LeaseKeeper
from tests._dbengine import configure, login, lookup, role_exists
from tests._openbao import Server, start_dev
from tests._postgres import Postgres

pytestmark = pytest.mark.interop

WAIT = 15.0


@pytest.fixture(scope="module")
def bao(bao_dev: Server, pg: Postgres) -> Server:
    configure(bao_dev, pg, {"readonly": ("4s", "12s"), "short": ("3s", "7s")})
    return bao_dev


def open_secrets(bao: Server, home: Path) -> Secrets:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[vault]\nrefresh = 30\n")
    env = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": bao.token}
    return Secrets.open(home=home, source="vault", env=env)


def test_renewal_keeps_it_valid_and_a_revoked_lease_is_replaced(
        bao: Server, pg: Postgres, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="macula_secrets.leases")
    changed: list[Lease] = []
    event = threading.Event()

    def on_change(lease: Lease) -> None:
        changed.append(lease)
        event.set()

    secrets = open_secrets(bao, tmp_path / "home")
    try:
        keeper = secrets.lease("database/creds/readonly")
        keeper.on_change(on_change)
        first = keeper.lease
        creds = keeper.get()
        assert first.ttl == 4 and first.renewable
        assert login(pg, creds) == creds["username"]

        # Past the first TTL (4 s): only renewals keep the role alive and VALID UNTIL ahead.
        time.sleep(6.5)
        assert keeper.renewals >= 2
        assert keeper.lease.lease_id == first.lease_id
        assert keeper.get() == creds
        assert login(pg, creds) == creds["username"]
        assert changed == []

        # Revoked behind the keeper's back: OpenBao drops the role at once.
        before = keeper.lease
        bao.request("PUT", "/v1/sys/leases/revoke", {"lease_id": first.lease_id})
        with pytest.raises(psycopg.OperationalError):
            login(pg, creds)
        assert event.wait(WAIT), "the revoked lease was not replaced"
        new = changed[0]
        assert new.lease_id != first.lease_id
        # Noticed at the next renewal (a refusal), not only once the old lease ran out.
        assert new.issued_at < before.expires_at
        assert keeper.lease.lease_id == new.lease_id
        fresh = keeper.get()
        assert fresh["username"] != creds["username"]
        assert login(pg, fresh) == fresh["username"]
        assert not role_exists(pg, creds["username"])

        # What may be shown: the path and a short id, never the credential.
        for shown in (repr(keeper), repr(keeper.lease), str(keeper.lease)):
            assert "database/creds/readonly" in shown
            assert fresh["password"] not in shown and fresh["username"] not in shown
            assert new.lease_id not in shown
    finally:
        secrets.close()
    # Closing the Secrets revoked the lease: the role is gone.
    assert lookup(bao, new.lease_id) == 400
    assert not role_exists(pg, fresh["username"])
    with pytest.raises(psycopg.OperationalError):
        login(pg, fresh)
    log = caplog.text
    assert "database/creds/readonly" in log
    for secret in (creds["password"], fresh["password"], first.lease_id, new.lease_id):
        assert secret not in log


def test_max_ttl_reached_issues_a_new_credential(
        bao: Server, pg: Postgres, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="macula_secrets.leases")
    changed: list[Lease] = []
    event = threading.Event()

    def on_change(lease: Lease) -> None:
        changed.append(lease)
        event.set()

    with VaultBackend(bao.address, token=bao.token) as backend, \
            LeaseKeeper(backend, "database/creds/short", on_change=on_change) as keeper:
        first = keeper.lease
        creds = keeper.get()
        # max_ttl is 7 s: renewals come back short near the end and a new lease is read.
        assert event.wait(WAIT), "no new credential at max_ttl"
        elapsed = (changed[0].issued_at - first.issued_at).total_seconds()
        assert 3.0 < elapsed < 7.0, elapsed
        # Taken because renewal came back short, while the old lease still had time.
        assert "reached its max TTL" in caplog.text
        assert "renewal was refused" not in caplog.text
        assert keeper.renewals >= 1
        fresh = keeper.get()
        assert fresh["username"] != creds["username"]
        assert login(pg, fresh) == fresh["username"]
        assert keeper.lease.expires_at > first.expires_at
    assert lookup(bao, changed[-1].lease_id) == 400   # closed: revoked


def test_offline_serves_until_expiry_then_raises(
        pg: Postgres, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="macula_secrets.leases")
    with start_dev() as own:
        configure(own, pg, {"ro": ("3s", "60s")})
        backend = VaultBackend(own.address, token=own.token, timeout=1.0,
                               retry=RetryPolicy(max_attempts=1))
        keeper = LeaseKeeper(backend, "database/creds/ro")
        creds = keeper.get()
        lease = keeper.lease
    # The server is gone (its roles stay in PostgreSQL: nobody is left to drop them).
    try:
        assert keeper.get() == creds
        assert login(pg, creds) == creds["username"]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                keeper.get()
            except UnavailableError as exc:
                error = exc
                break
            time.sleep(0.1)
        else:
            pytest.fail("get() still answered after the lease expired")
        message = str(error)
        assert "database/creds/ro" in message and "expired" in message
        assert lease.short_id in message
        for secret in (creds["password"], creds["username"], lease.lease_id):
            assert secret not in message
        assert "cannot reach vault" in caplog.text
    finally:
        keeper.close(revoke=False)
        backend.close()
    for secret in (creds["password"], lease.lease_id):
        assert secret not in caplog.text


def test_lease_needs_a_vault_source(tmp_path: Path) -> None:
    from macula_secrets.errors import ConfigError

    with Secrets.open(home=tmp_path / "home", env={}) as secrets, \
            pytest.raises(ConfigError, match="leases need a vault source"):
        secrets.lease("database/creds/readonly")


def test_settings_modules_get_a_lease_through_config(bao: Server, pg: Postgres,
                                                     tmp_path: Path) -> None:
    """``config.lease(path)`` on the shared default Secrets: the credential logs in, and
    closing the shared Secrets revokes it."""
    from macula_secrets import config

    with open_secrets(bao, tmp_path / "home") as secrets:
        keeper = config.lease("database/creds/readonly", secrets=secrets)
        creds = keeper.get()
        assert login(pg, creds) == creds["username"]
        assert creds["password"] not in repr(keeper)
    assert not role_exists(pg, creds["username"])
