"""The bootstrap's join desk: what it refuses, over the real server and in-process.

Over HTTP (a real TLS server): a replayed request is 409, a request for
another bootstrap's certificate or with a stale time 400, a wrong proof and
an unknown id 404 alike, an endpoint without TLS 404. In-process with a
clock the test moves: unproven and unanswered requests expire; a full desk
refuses more; the request files are 0600 in a 0700 folder and hold no
challenge, only its commitment; a grant changed on the bootstrap's disk is
an error on the node, which then has nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from macula_secrets import Secrets
from macula_secrets._config import MeshConfig
from macula_secrets.errors import ConflictError, LimitError, MaculaError, NotFoundError
from macula_secrets.keys import age
from macula_secrets.mesh import desk as D
from macula_secrets.mesh.desk import JoinDesk, Scope
from macula_secrets.mesh.joiner import join
from macula_secrets.mesh.protocol import JoinMessage, b64, open_sealed
from macula_secrets.server.run import ServeOptions, fingerprint, prepare, start_in_thread

FP = "AB" * 32
CERTS: dict[str, str] = {}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _message(name: str = "edge", *, created: float, recipient: str | None = None,
             bootstrap: str = FP) -> JoinMessage:
    return JoinMessage(name, recipient or age.generate_identity().to_recipient().text,
                       b64(secrets.token_bytes(16)), int(created), bootstrap)


def _grant(record: D.JoinRecord, scope: Scope) -> tuple[bytes, str | None]:
    return json.dumps({"version": 1, "values": {}, "node": record.name}).encode(), None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> JoinDesk:
    return JoinDesk(str(tmp_path / "home"), fingerprint=FP, config=MeshConfig(request_ttl=60),
                    clock=clock)


def _proved(desk: JoinDesk, clock: Clock, name: str = "edge") -> tuple[str, str, Any]:
    identity = age.generate_identity()
    answer = desk.submit(_message(name, created=clock.now,
                                  recipient=identity.to_recipient().text).to_json())
    proof = b64(open_sealed(answer["challenge"], [identity], "challenge"))
    assert desk.poll(answer["request_id"], proof)["status"] == "pending"
    return answer["request_id"], proof, identity


def test_requests_expire_unproven_and_unanswered(desk: JoinDesk, clock: Clock) -> None:
    answer = desk.submit(_message(created=clock.now).to_json())
    clock.now += D.PROOF_WINDOW + 1
    assert desk.requests() == []
    request_id, proof, _ = _proved(desk, clock, "edge-b")
    assert [r.name for r in desk.requests()] == ["edge-b"]
    clock.now += 61
    assert desk.requests() == []
    assert desk.poll(request_id, proof)["status"] == "expired"
    with pytest.raises(NotFoundError):
        desk.approve("edge-b", make_grant=_grant)
    assert answer["request_id"] != request_id


def test_approved_grant_is_delivered_once(desk: JoinDesk, clock: Clock) -> None:
    request_id, proof, identity = _proved(desk, clock)
    record = desk.approve("edge", make_grant=_grant)
    assert record.status == "approved"
    first = desk.poll(request_id, proof)
    assert first["status"] == "approved"
    assert json.loads(open_sealed(first["grant"], [identity], "grant"))["node"] == "edge"
    second = desk.poll(request_id, proof)
    assert second["status"] == "delivered" and "grant" not in second


def test_files_hold_commitments_not_secrets(desk: JoinDesk, clock: Clock) -> None:
    request_id, proof, _ = _proved(desk, clock)
    folder = Path(desk.folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    path = folder / f"{request_id}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert proof not in text and base64.b64decode(proof).hex() not in text
    with pytest.raises(NotFoundError):
        desk.poll(request_id, b64(secrets.token_bytes(32)))  # a guess is not a proof
    with pytest.raises(NotFoundError):
        desk.poll("0" * 32, proof)


def test_a_full_desk_refuses_more(desk: JoinDesk, clock: Clock, monkeypatch: Any) -> None:
    monkeypatch.setattr(D, "MAX_LIVE", 3)
    for i in range(3):
        desk.submit(_message(f"n{i}", created=clock.now).to_json())
    with pytest.raises(LimitError):
        desk.submit(_message("n3", created=clock.now).to_json())
    with pytest.raises(ConflictError):
        desk.submit(_message("n0", created=clock.now).to_json())  # already waiting


def test_scope_is_fixed_by_the_first_approval(tmp_path: Path, clock: Clock) -> None:
    keys = [age.generate_identity() for _ in range(2)]
    cfg = MeshConfig(approvals=2, approvers={"a": keys[0].to_recipient().text,
                                             "b": keys[1].to_recipient().text})
    desk = JoinDesk(str(tmp_path / "h"), fingerprint=FP, config=cfg, clock=clock)
    _proved(desk, clock)
    desk.approve("edge", make_grant=_grant, approver="a", identities=[keys[0]],
                 scope=Scope(("console",)))
    with pytest.raises(ConflictError):
        desk.approve("edge", make_grant=_grant, approver="b", identities=[keys[1]],
                     scope=Scope(("console", "billing")))
    record = desk.approve("edge", make_grant=_grant, approver="b", identities=[keys[1]])
    assert record.status == "approved" and record.scope == Scope(("console",))


# -- over the real server ------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A TLS server over a fresh home: its URL, certificate fingerprint (hex) and home."""
    home = tmp_path / "b"
    with Secrets.open(home=home, source="none", env={}) as s:
        serving = prepare(ServeOptions(address="127.0.0.1:0"), secrets=s, out=lambda _l: None)
        thread = start_in_thread(serving)
        try:
            assert serving.cert is not None
            CERTS[serving.url] = serving.cert
            yield serving.url, fingerprint(serving.cert).replace(":", ""), home
        finally:
            serving.stop()
            thread.join(timeout=15)


def _post(url: str, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/sys/macula/join{path}", json=body,
                      verify=ssl.create_default_context(cafile=CERTS[url]))


def test_refusals_over_http(served: tuple[str, str, Path]) -> None:
    url, fp, home = served
    message = _message(created=time.time(), bootstrap=fp).to_json()
    first = _post(url, "", message)
    assert first.status_code == 200, first.text
    replay = _post(url, "", message)
    assert replay.status_code == 409 and "replay" in replay.json()["errors"][0]
    other = _post(url, "", _message("x2", created=time.time()).to_json())  # FP is not ours
    assert other.status_code == 400 and "another bootstrap" in other.json()["errors"][0]
    stale = _post(url, "", _message("x3", created=time.time() - 3600, bootstrap=fp).to_json())
    assert stale.status_code == 400 and "too old" in stale.json()["errors"][0]
    bad = _post(url, "", {**message, "recipient": "age1notakey"})
    assert bad.status_code == 400
    wrong = _post(url, f"/{first.json()['request_id']}", {"proof": b64(b"\0" * 32)})
    unknown = _post(url, f"/{'0' * 32}", {"proof": b64(b"\0" * 32)})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.content == unknown.content
    ops = [json.loads(line)["op"] for line in (home / "audit.log").read_text().splitlines()]
    assert ops.count("join-request") == 1 and ops.count("join-refused") == 1


def test_a_plain_http_server_offers_no_join(tmp_path: Path) -> None:
    with Secrets.open(home=tmp_path / "p", source="none", env={}) as s:
        serving = prepare(ServeOptions(address="127.0.0.1:0", tls_disable=True), secrets=s,
                          out=lambda _l: None)
        thread = start_in_thread(serving)
        try:
            resp = httpx.post(f"{serving.url}/v1/sys/macula/join", json={})
            assert resp.status_code == 404
        finally:
            serving.stop()
            thread.join(timeout=15)


def test_a_grant_changed_on_the_bootstrap_is_refused_by_the_node(
        served: tuple[str, str, Path], tmp_path: Path) -> None:
    url, fp, home = served
    node = tmp_path / "node"
    desk = JoinDesk(str(home), fingerprint=fp, config=MeshConfig())
    state: dict[str, Any] = {}

    def approve_and_tamper(answer: dict[str, Any]) -> None:
        if state:
            return
        record = desk.approve("edge-t", make_grant=_grant)
        path = Path(desk.folder) / f"{record.id}.json"
        doc = json.loads(path.read_text())
        lines = doc["grant"].splitlines()
        body = bytearray(base64.b64decode("".join(lines[1:-1])))
        body[-20] ^= 0x01
        enc = base64.b64encode(bytes(body)).decode()
        doc["grant"] = "\n".join([lines[0], *[enc[i:i + 64] for i in range(0, len(enc), 64)],
                                  lines[-1]]) + "\n"
        path.write_text(json.dumps(doc))
        state["done"] = True

    with pytest.raises(MaculaError) as caught:
        join(url, name="edge-t", fingerprint=fp, home=str(node), poll=0.01, timeout=10,
             open_secrets=lambda: Secrets.open(home=node, source="none", env={}),
             on_wait=approve_and_tamper)
    assert "grant" in str(caught.value)
    assert not (node / "bootstrap").exists()
    assert not os.path.exists(node / "store.db")


def test_a_request_changed_on_its_way_is_caught_by_the_code(
        served: tuple[str, str, Path], tmp_path: Path, monkeypatch: Any) -> None:
    """Something between the node and the desk swaps the node's key for its own: the
    desk's code is then another, and the node stops before proving anything."""
    url, fp, home = served
    intruder = age.generate_identity().to_recipient().text
    original = JoinDesk.submit

    def swapped(self: JoinDesk, body: object) -> dict[str, Any]:
        assert isinstance(body, dict)
        return original(self, {**body, "recipient": intruder})

    monkeypatch.setattr(JoinDesk, "submit", swapped)
    with pytest.raises(MaculaError) as caught:
        join(url, name="edge-m", fingerprint=fp, home=str(tmp_path / "node"), poll=0.01,
             timeout=5, open_secrets=lambda: Secrets.open(home=tmp_path / "n", env={}))
    assert "another join code" in str(caught.value)
    assert not (tmp_path / "node" / "join-state.json").exists()
    desk = JoinDesk(str(home), fingerprint=fp, config=MeshConfig())
    assert desk.requests() == []  # never proven, so never listed for approval
