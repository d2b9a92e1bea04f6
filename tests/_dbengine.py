"""OpenBao's database secrets engine on a test PostgreSQL, for the lease tests.

``configure`` mounts the engine (the builtin ``postgresql-database-plugin``)
on a ``bao server -dev`` and makes roles; ``login``, ``lookup`` and
``role_exists`` check from outside what a lease did. The ``pg`` fixture
(tests/interop/conftest.py) makes the superuser the engine connects as.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tests._openbao import Server
from tests._postgres import Postgres

ADMIN, ADMIN_PASSWORD = "bao_admin", "bao-admin-pw"


def configure(bao: Server, pg: Postgres, roles: dict[str, tuple[str, str]]) -> None:
    """Mount the database engine, point it at ``pg`` and make ``roles`` (ttl, max_ttl)."""
    bao.request("POST", "/v1/sys/mounts/database", {"type": "database"})
    bao.request("POST", "/v1/database/config/pg", {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:"
                          f"{pg.port}/postgres?sslmode=disable",
        "username": ADMIN, "password": ADMIN_PASSWORD,
        "allowed_roles": ",".join(roles)})
    for name, (ttl, max_ttl) in roles.items():
        bao.request("POST", f"/v1/database/roles/{name}", {
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                "VALID UNTIL '{{expiration}}';",
                "GRANT pg_read_all_data TO \"{{name}}\";"],
            "default_ttl": ttl, "max_ttl": max_ttl})


def login(pg: Postgres, creds: dict[str, Any]) -> str:
    """Log in over TCP with the credential; the server's ``current_user``."""
    with psycopg.connect(host=pg.host, port=pg.port, dbname="postgres", connect_timeout=5,
                         user=creds["username"], password=creds["password"]) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def lookup(bao: Server, lease_id: str) -> int:
    """The HTTP status of ``sys/leases/lookup`` for the lease (400: unknown or revoked)."""
    status, _ = bao.request("PUT", "/v1/sys/leases/lookup", {"lease_id": lease_id},
                            check=False)
    return status


def role_exists(pg: Postgres, name: str) -> bool:
    return bool(pg.admin("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)))
