"""hvac's KV v2 client, unchanged, against the server over TLS (self-signed certificate)."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from .conftest import READER, ROOT, WEB, Running


def client(server: Running, token: str = ROOT, namespace: str | None = None) -> hvac.Client:
    assert server.cert is not None
    return hvac.Client(url=server.url, token=token, verify=server.cert, namespace=namespace)


def test_kv_v2_round_trip(server: Running) -> None:
    kv = client(server).secrets.kv.v2
    first = kv.create_or_update_secret("macula/console/db", secret={"value": "pw-1"})
    assert first["data"]["version"] == 1
    kv.create_or_update_secret("macula/console/db", secret={"value": "pw-2"}, cas=1)
    latest = kv.read_secret_version("macula/console/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"value": "pw-2"}
    assert latest["data"]["metadata"]["version"] == 2
    assert set(latest) >= {"request_id", "lease_id", "renewable", "lease_duration", "data",
                           "wrap_info", "warnings", "auth"}
    old = kv.read_secret_version("macula/console/db", version=1,
                                 raise_on_deleted_version=True)
    assert old["data"]["data"] == {"value": "pw-1"}
    assert kv.list_secrets("macula/")["data"]["keys"] == ["console/"]
    assert kv.list_secrets("macula/console")["data"]["keys"] == ["db"]
    meta = kv.read_secret_metadata("macula/console/db")["data"]
    assert meta["current_version"] == 2 and set(meta["versions"]) == {"1", "2"}
    # The store behind it is the same one the library reads.
    assert server.secrets.get("console", "db") == "pw-2"


def test_delete_undelete_destroy(server: Running) -> None:
    kv = client(server).secrets.kv.v2
    kv.create_or_update_secret("macula/web/key", secret={"value": "a"})
    kv.create_or_update_secret("macula/web/key", secret={"value": "b"})
    kv.delete_latest_version_of_secret("macula/web/key")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("macula/web/key", raise_on_deleted_version=True)
    kv.undelete_secret_versions("macula/web/key", versions=[2])
    assert kv.read_secret_version("macula/web/key", raise_on_deleted_version=True
                                  )["data"]["data"]["value"] == "b"
    kv.delete_secret_versions("macula/web/key", versions=[1])
    kv.destroy_secret_versions("macula/web/key", versions=[1])
    meta = kv.read_secret_metadata("macula/web/key")["data"]["versions"]
    assert meta["1"]["destroyed"] is True and meta["2"]["destroyed"] is False
    kv.delete_metadata_and_all_versions("macula/web/key")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata("macula/web/key")


def test_cas_mismatch_is_400(server: Running) -> None:
    kv = client(server).secrets.kv.v2
    kv.create_or_update_secret("macula/console/db", secret={"value": "x"})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("macula/console/db", secret={"value": "y"}, cas=0)


def test_other_fields_are_refused_with_a_clear_message(server: Running) -> None:
    kv = client(server).secrets.kv.v2
    with pytest.raises(hvac.exceptions.InvalidRequest, match="one string field"):
        kv.create_or_update_secret("macula/console/db", secret={"user": "u", "pass": "p"})


def test_tokens_and_policies(server: Running) -> None:
    client(server).secrets.kv.v2.create_or_update_secret("macula/console/db",
                                                         secret={"value": "x"})
    for token in (None, "s.wrong"):
        c = hvac.Client(url=server.url, token=token, verify=server.cert)
        with pytest.raises(hvac.exceptions.Forbidden):
            c.secrets.kv.v2.read_secret_version("macula/console/db",
                                                raise_on_deleted_version=True)
    reader = client(server, READER).secrets.kv.v2
    assert reader.read_secret_version("macula/console/db", raise_on_deleted_version=True
                                      )["data"]["data"]["value"] == "x"
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.create_or_update_secret("macula/console/db", secret={"value": "y"})
    web = client(server, WEB).secrets.kv.v2
    with pytest.raises(hvac.exceptions.Forbidden):
        web.read_secret_version("macula/console/db", raise_on_deleted_version=True)
    web.create_or_update_secret("macula/web/api", secret={"value": "w"})
    # LIST of apps shows only what the token may list.
    assert client(server, READER).secrets.kv.v2.list_secrets("macula/")["data"]["keys"] == [
        "console/"]
    assert client(server).secrets.kv.v2.list_secrets("macula/")["data"]["keys"] == [
        "console/", "web/"]
    assert client(server, READER).is_authenticated()
    assert not hvac.Client(url=server.url, token="s.wrong", verify=server.cert
                           ).is_authenticated()


def test_tenants_are_namespaces(server: Running) -> None:
    client(server, namespace="acme").secrets.kv.v2.create_or_update_secret(
        "macula/console/db", secret={"value": "acme"})
    with pytest.raises(hvac.exceptions.InvalidPath):
        client(server).secrets.kv.v2.read_secret_version("macula/console/db",
                                                         raise_on_deleted_version=True)
    assert server.secrets.with_tenant("acme").get("console", "db") == "acme"
    # The reader's rule is for the tenant "default" only.
    with pytest.raises(hvac.exceptions.Forbidden):
        client(server, READER, namespace="acme").secrets.kv.v2.read_secret_version(
            "macula/console/db", raise_on_deleted_version=True)
