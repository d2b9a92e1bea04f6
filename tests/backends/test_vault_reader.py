"""The stdlib reader behind VaultBackend's reads: keep-alive, pipelining and its fallbacks.

A real HTTP/1.1 server (the standard library's, on 127.0.0.1) plays Vault
here, so the cases OpenBao never produces can be had on demand: a server
that hangs up in the middle of a pipeline without saying so, one that
closes after every answer, a redirect, an idle connection the server
closed. OpenBao itself is covered in tests/interop/test_vault_backend.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hvac.exceptions
import pytest

from macula_secrets.backends._vaulthttp import PIPELINE_DEPTH, Reader
from macula_secrets.backends.vault import VaultBackend
from macula_secrets.errors import KeySourceError

HEADERS = {"X-Vault-Token": "tok"}


@dataclass
class Behaviour:
    """How the fake server answers; what it saw."""

    hang_up_after: int | None = None  # per connection: close silently after N answers
    close_each: bool = False  # "Connection: close" on every answer
    redirect_to: str | None = None  # 307 for /v1/moved/...
    paths: list[str] = field(default_factory=list)
    connections: int = 0


def _serve(behaviour: Behaviour) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            behaviour.connections += 1
            self.answered = 0

        def do_GET(self) -> None:  # http.server's name
            behaviour.paths.append(self.path)
            if behaviour.hang_up_after is not None and self.answered >= behaviour.hang_up_after:
                self.close_connection = True
                return  # no answer at all: the pipeline is dropped
            if self.path.startswith("/v1/moved/") and behaviour.redirect_to:
                self.send_response(307)
                self.send_header("Location", behaviour.redirect_to + self.path.replace(
                    "/moved/", "/secret/", 1))
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.answered += 1
                return
            name = self.path.rsplit("/", 1)[1]
            if name.startswith("absent"):
                status, body = 404, {"errors": []}
            else:
                status, body = 200, {"data": {"data": {"value": f"value of {name}"}}}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if behaviour.close_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
            self.answered += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[tuple[Behaviour, str]]:
    behaviour = Behaviour()
    server, base = _serve(behaviour)
    try:
        yield behaviour, base
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def reader() -> Iterator[Reader]:
    r = Reader(verify=True, cert=None, timeout=5.0)
    try:
        yield r
    finally:
        r.close()


def _paths(n: int, absent: tuple[int, ...] = ()) -> list[str]:
    return [f"/v1/secret/data/app/{'absent' if i in absent else 'key'}{i}" for i in range(n)]


def _values(answers: list[Any]) -> list[str | None]:
    out: list[str | None] = []
    for a in answers:
        if isinstance(a, hvac.exceptions.InvalidPath):
            out.append(None)
        else:
            out.append(a["data"]["data"]["value"])
    return out


def test_a_pipeline_answers_every_request_in_order_on_one_connection(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    behaviour, base = fake
    answers = reader.request_many(base, "GET", _paths(12, absent=(3, 7)), HEADERS,
                                  connections=1)
    assert _values(answers) == [None if i in (3, 7) else f"value of key{i}" for i in range(12)]
    assert behaviour.connections == 1
    # The connection stays usable for single requests, and for the next pipeline.
    assert reader.request(base, "GET", "/v1/secret/data/app/one", HEADERS)["data"]["data"] == {
        "value": "value of one"}
    assert _values(reader.request_many(base, "GET", _paths(3), HEADERS, connections=1)) == [
        "value of key0", "value of key1", "value of key2"]
    assert behaviour.connections == 1
    assert reader.pipelining


def test_many_reads_spread_over_connections_in_rounds(fake: tuple[Behaviour, str],
                                                      reader: Reader) -> None:
    behaviour, base = fake
    n = 3 * PIPELINE_DEPTH + 5  # more than one round of 3 connections
    answers = reader.request_many(base, "GET", _paths(n, absent=(0, n - 1)), HEADERS,
                                  connections=3)
    assert _values(answers) == [None if i in (0, n - 1) else f"value of key{i}"
                                for i in range(n)]
    assert behaviour.connections == 3  # kept alive from one round to the next
    assert sorted(behaviour.paths) == sorted(_paths(n, absent=(0, n - 1)))


def test_a_server_that_drops_a_pipeline_gets_one_request_at_a_time(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    behaviour, base = fake
    behaviour.hang_up_after = 2
    answers = reader.request_many(base, "GET", _paths(7), HEADERS, connections=1)
    assert _values(answers) == [f"value of key{i}" for i in range(7)]
    assert not reader.pipelining


def test_connection_close_after_every_answer_is_followed(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    behaviour, base = fake
    behaviour.close_each = True
    answers = reader.request_many(base, "GET", _paths(5), HEADERS)
    assert _values(answers) == [f"value of key{i}" for i in range(5)]
    assert behaviour.connections >= 5  # one per answer
    assert reader.pipelining  # the server said so each time: nothing wrong with pipelining


def test_an_idle_connection_the_server_closed_is_replaced(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    behaviour, base = fake
    assert reader.request(base, "GET", "/v1/secret/data/app/a", HEADERS)
    # Close the server side of the kept-alive connection, as an idle timeout would.
    conn = next(iter(reader._open))
    assert conn.sock is not None
    conn.sock.shutdown(2)  # both directions: the next write or read fails
    assert reader.request(base, "GET", "/v1/secret/data/app/b", HEADERS)["data"]["data"] == {
        "value": "value of b"}
    assert behaviour.connections == 2


def test_redirects_are_followed_in_and_out_of_a_pipeline(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    behaviour, base = fake
    behaviour.redirect_to = base
    moved = ["/v1/moved/data/app/k1", "/v1/secret/data/app/k2", "/v1/moved/data/app/k3"]
    assert _values(reader.request_many(base, "GET", moved, HEADERS)) == [
        "value of k1", "value of k2", "value of k3"]
    assert reader.request(base, "GET", "/v1/moved/data/app/k4", HEADERS)["data"]["data"] == {
        "value": "value of k4"}


def test_a_token_that_cannot_be_a_header_is_refused_without_showing_it(
        fake: tuple[Behaviour, str], reader: Reader) -> None:
    _, base = fake
    secret = "s.abc\r\nX-Injected: yes"
    with VaultBackend(base, token=secret) as b, pytest.raises(KeySourceError) as info:
        b.get("app", "key")
    assert "abc" not in str(info.value) and "Injected" not in str(info.value)
