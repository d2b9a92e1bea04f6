"""Raw HTTP against the server: Vault's status codes and bodies for bad input."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from .conftest import ROOT, Running


def request(server: Running, method: str, path: str, body: bytes | str | None = None,
            token: str | None = ROOT, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, object] | None]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Vault-Token"] = token
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw) if raw else None


def raw_request(server: Running, line: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(line + b"\r\nHost: x\r\nX-Vault-Token: " + ROOT.encode()
                  + b"\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def put(server: Running, app: str, key: str, value: str) -> int:
    status, body = request(server, "POST", f"/v1/secret/data/macula/{app}/{key}",
                           json.dumps({"data": {"value": value}}))
    assert status == 200, body
    assert isinstance(body, dict)
    return int(body["data"]["version"])  # type: ignore[index]


def test_health_lookup_self_and_openapi(plain_server: Running) -> None:
    status, body = request(plain_server, "GET", "/v1/sys/health", token=None)
    assert status == 200 and body and body["initialized"] and not body["sealed"]
    status, body = request(plain_server, "GET", "/v1/auth/token/lookup-self")
    assert status == 200 and body["data"]["accessor"] == "acc-root"  # type: ignore[index]
    status, body = request(plain_server, "GET", "/v1/auth/token/lookup-self", token="nope")
    assert (status, body) == (403, {"errors": ["permission denied"]})
    status, body = request(plain_server, "GET", "/v1/sys/internal/specs/openapi")
    assert status == 200 and body and body["openapi"].startswith("3.")  # type: ignore[union-attr]
    assert "/v1/secret/data/{path}" in body["paths"]  # type: ignore[operator]


def test_bearer_token_and_list_method(plain_server: Running) -> None:
    put(plain_server, "console", "db", "x")
    status, body = request(plain_server, "LIST", "/v1/secret/metadata/macula/console",
                           token=None, headers={"Authorization": f"Bearer {ROOT}"})
    assert status == 200 and body["data"]["keys"] == ["db"]  # type: ignore[index]
    status, body = request(plain_server, "GET", "/v1/secret/metadata/macula/?list=true")
    assert status == 200 and body["data"]["keys"] == ["console/"]  # type: ignore[index]
    status, body = request(plain_server, "LIST", "/v1/secret/metadata/macula/nothing")
    assert (status, body) == (404, {"errors": []})


def test_not_found_and_forbidden_bodies(plain_server: Running) -> None:
    assert request(plain_server, "GET", "/v1/secret/data/macula/a/b") == (404, {"errors": []})
    put(plain_server, "console", "db", "x")
    assert request(plain_server, "GET", "/v1/secret/data/macula/console/db", token=None) == (
        403, {"errors": ["permission denied"]})
    assert request(plain_server, "GET", "/v1/secret/data/macula/console/db",
                   token="s.wrong") == (403, {"errors": ["permission denied"]})
    assert request(plain_server, "GET", "/v1/other/thing") == (404, {"errors": []})


@pytest.mark.parametrize("path", [
    "/v1/secret/data/macula/../etc/passwd",
    "/v1/secret/data/macula/console/..",
    "/v1/secret/data/macula/..%2f..%2fetc/passwd",
    "/v1/secret/data/macula/%2e%2e/x",
    "/v1/secret/data/macula/console%2f..%2fweb/key",
    "/v1/secret/data/macula/console/..%5ckey",
    "/v1/secret/data/other/app/key",
    "/v1/secret/data/macula/only-app",
    "/v1/secret/data/macula/a/b/c",
])
def test_traversal_and_bad_paths_are_400(plain_server: Running, path: str) -> None:
    out = raw_request(plain_server, f"GET {path} HTTP/1.1".encode())
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert b'"errors"' in out


def test_malformed_json_and_bad_data(plain_server: Running) -> None:
    url = "/v1/secret/data/macula/console/db"
    status, body = request(plain_server, "POST", url, "{not json")
    assert status == 400 and "malformed JSON" in body["errors"][0]  # type: ignore[index]
    for doc in ({"data": {"value": 5}}, {"data": "x"}, {"nodata": 1}, [1, 2],
                {"data": {"value": "x"}, "options": {"cas": "many"}}):
        status, body = request(plain_server, "POST", url, json.dumps(doc))
        assert status == 400, doc
    assert request(plain_server, "GET", url)[0] == 404  # nothing was written


def test_oversized_body_is_413(plain_server: Running) -> None:
    limit = plain_server.serving.app.max_body
    big = json.dumps({"data": {"value": "x" * (limit + 1)}})
    status, body = request(plain_server, "POST", "/v1/secret/data/macula/console/db", big)
    assert status == 413 and body and body["errors"]
    # Under the body limit but over the store's value limit: 413 too.
    value = "x" * (plain_server.secrets.store.max_value_size + 1)
    status, _ = request(plain_server, "POST", "/v1/secret/data/macula/console/db",
                        json.dumps({"data": {"value": value}}))
    assert status == 413


def test_method_not_allowed(plain_server: Running) -> None:
    assert request(plain_server, "PUT", "/v1/sys/health")[0] == 405
    assert request(plain_server, "GET", "/v1/secret/destroy/macula/a/b")[0] == 405


def test_patch_and_delete_on_data(plain_server: Running) -> None:
    url = "/v1/secret/data/macula/console/db"
    ctype = {"Content-Type": "application/merge-patch+json"}
    assert request(plain_server, "PATCH", url, json.dumps({"data": {"value": "p"}}),
                   headers=ctype)[0] == 404
    put(plain_server, "console", "db", "x")
    status, body = request(plain_server, "PATCH", url, json.dumps({"data": {"value": "p"}}),
                           headers=ctype)
    assert status == 200 and body["data"]["version"] == 2  # type: ignore[index]
    assert request(plain_server, "DELETE", url) == (204, None)
    status, body = request(plain_server, "GET", url)
    assert status == 404 and body["data"]["metadata"]["deletion_time"]  # type: ignore[index]


def test_a_change_by_another_writer_is_read_at_once(plain_server: Running) -> None:
    url = "/v1/secret/data/macula/console/db"
    put(plain_server, "console", "db", "one")
    first = request(plain_server, "GET", url)[1]
    assert first["data"]["data"]["value"] == "one"  # type: ignore[index]
    plain_server.secrets.put("console", "db", "two")  # not through the server
    status, body = request(plain_server, "GET", url)
    assert status == 200
    assert body["data"]["data"]["value"] == "two"  # type: ignore[index]
    assert body["data"]["metadata"]["version"] == 2  # type: ignore[index]
