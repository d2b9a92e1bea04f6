"""A GET of the latest version sends a value and the version it belongs to, never a mix.

Found by test_load.py (about 50 of 11,000 reads under 32 clients): a read
returned the value of version N+1 with the metadata (``version``) of
version N. Cause, in ``App._read`` (server/app.py): for the latest version
it reads ``secrets.history()`` first, picks the current version's record,
and only then reads the value with ``secrets.get()`` (the latest, whatever
it is by then). A write that commits between the two makes the value
newer than the record. The guard meant for this (``if version == 0 and
value is not None and not info.current``) cannot fire: ``info`` was picked
*because* it was current in the same history read.

Here the write is made to fall exactly between the two reads (the history
call is wrapped to commit a new version, through another ``Secrets`` on
the same home, right after it returns), so the test fails every time
while the bug is there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.server.auth import Rule

from ._support import TokenServer, as_json, call, start_token_server


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[TokenServer]:
    yield from start_token_server(tmp_path / "home")


def test_a_write_between_history_and_value_is_not_mislabeled(srv: TokenServer) -> None:
    token, _ = srv.tokens.create([Rule(frozenset({"read", "create", "update"}), app="app")],
                                 display_name="consistency")
    h = {"X-Vault-Token": token}
    url = "/v1/secret/data/macula/app/key"
    assert call(srv.host, srv.port, "POST", url, json.dumps({"data": {"value": "one"}}),
                h)[0] == 200
    other = Secrets.open(home=srv.home, source="none", env={})
    view = srv.serving.app._tenant("default")
    real = view.history
    fired = []

    def history_then_write(app: str, key: str) -> object:
        infos = real(app, key)
        if not fired:
            fired.append(other.put("app", "key", "two"))   # commits version 2 now
        return infos

    view.history = history_then_write  # type: ignore[method-assign]
    try:
        status, raw = call(srv.host, srv.port, "GET", url, None, h)
    finally:
        del view.history
        other.close()
    assert fired == [2]
    assert status == 200
    doc = as_json(raw)
    assert isinstance(doc, dict)
    got = (doc["data"]["metadata"]["version"], doc["data"]["data"]["value"])
    assert got in ((1, "one"), (2, "two")), f"value and version do not match: {got}"
