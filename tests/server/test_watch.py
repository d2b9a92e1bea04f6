"""The watch stream: server-sent events for the changes a token may read."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator

from .conftest import READER, ROOT, Running
from .test_http import put, request


@contextlib.contextmanager
def open_stream(server: Running, query: str, token: str) -> Iterator[http.client.HTTPResponse]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", f"/v1/sys/macula/watch?{query}", headers={"X-Vault-Token": token})
        resp = conn.getresponse()
        yield resp
        resp.close()
    finally:
        conn.close()


def status_of(server: Running, query: str, token: str) -> int:
    with open_stream(server, query, token) as resp:
        resp.read()
        return resp.status


def next_event(resp: http.client.HTTPResponse) -> dict[str, object]:
    event = None
    while True:
        line = resp.readline().decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "change":
            data: dict[str, object] = json.loads(line[6:])
            return data


def test_watch_sees_a_put(plain_server: Running) -> None:
    with open_stream(plain_server, "app=console", READER) as resp:
        assert resp.status == 200
        assert resp.getheader("content-type") == "text/event-stream"
        assert resp.readline() == b": watching\n"
        put(plain_server, "console", "db", "v1")
        assert next_event(resp) == {"tenant": "default", "app": "console", "key": "db",
                                    "version": 1}
        put(plain_server, "web", "other", "x")       # another app: not sent
        put(plain_server, "console", "db", "v2")
        assert next_event(resp)["version"] == 2


def test_watch_needs_read_on_the_app(plain_server: Running) -> None:
    assert status_of(plain_server, "app=web", READER) == 403
    assert status_of(plain_server, "app=console", "s.wrong") == 403
    assert status_of(plain_server, "app=..", ROOT) == 400
    assert request(plain_server, "GET", "/v1/sys/macula/watch")[0] == 400


def test_a_client_that_leaves_ends_its_stream(plain_server: Running) -> None:
    import time

    app = plain_server.serving.app
    with open_stream(plain_server, "app=console", READER) as resp:
        assert resp.readline() == b": watching\n"
        assert len(app._watchers) == 1
    deadline = time.monotonic() + 5
    while app._watchers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not app._watchers
