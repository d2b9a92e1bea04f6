"""The new node's side of joining: its identity, a pinned TLS connection, the wait for approval.

Trust comes from the certificate fingerprint the operator gives
(``--fingerprint``, as ``serve`` prints it), never from the first
connection: the connection is made without CA checks and then refused,
before a byte of the request is sent, unless the server's certificate
hashes to that fingerprint (compared in constant time). The node's identity
is its own age X25519 key (``<home>/node.key``, made 0600 when missing) or
its ssh-ed25519 host key; only its public half is sent.

While the request waits, its id and proof are kept in
``<home>/join-state.json`` (0600), so an interrupted ``join`` run again
with the same bootstrap and name picks the same request up. ``wire`` is a
hook that sees every request and answer body as sent and received: tests
use it to check that no private key or value ever crosses in the clear.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import os
import secrets as _secrets
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .._fs import atomic_write
from ..errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    KeySourceError,
    MaculaError,
    UnavailableError,
)
from .grant import AppliedGrant, apply_grant
from .protocol import (
    NONCE_BYTES,
    JoinMessage,
    b64,
    colon_form,
    fingerprint_of_der,
    normalize_fingerprint,
    open_sealed,
)

if TYPE_CHECKING:
    from ..client import Secrets
    from ..keys.age import AgeIdentity

__all__ = ["IDENTITY_FILE", "STATE_FILE", "JoinOutcome", "JoinRefusedError", "join",
           "node_identity"]

IDENTITY_FILE: Final = "node.key"
STATE_FILE: Final = "join-state.json"
Wire = Callable[[str, bytes], None]
"""``wire(direction, data)``: ``"sent"`` or ``"received"`` and the bytes."""


class JoinRefusedError(MaculaError):
    """The bootstrap refused, rejected or let the request expire."""


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """A finished join: the node's public key, the code and what the grant brought."""

    name: str
    recipient: str
    code: str
    applied: AppliedGrant


def node_identity(home: str, ssh_key: str | None = None) -> AgeIdentity:
    """This node's identity: ``ssh_key`` (an ssh-ed25519 private key) or ``<home>/node.key``.

    ``node.key`` is made (age X25519, 0600) when it does not exist.
    """
    from ..keys.age import (
        generate_identity,
        parse_identities,
        parse_identity_data,
        write_identity_file,
    )
    from ..keys.master import read_private

    if ssh_key is not None:
        try:
            with open(ssh_key, "rb") as f:
                data = f.read(65536)
        except OSError as exc:
            raise KeySourceError(f"cannot read the ssh key {ssh_key}: {exc.strerror}") from None
        identity = parse_identity_data(data, source=ssh_key)[0]
        if identity.kind != "ssh-ed25519":
            raise KeySourceError(f"{ssh_key} is not an ssh-ed25519 key",
                                 hint="join with an ed25519 host key, or without --ssh-key")
        return identity
    path = os.path.join(home, IDENTITY_FILE)
    if not os.path.exists(path):
        os.makedirs(home, mode=0o700, exist_ok=True)
        with contextlib.suppress(KeySourceError):  # another join made it meanwhile
            write_identity_file(path, generate_identity())
    return parse_identities(read_private(path, "node identity"), source=path)[0]


def join(url: str, *, name: str, fingerprint: str, home: str,
         open_secrets: Callable[[], Secrets], ssh_key: str | None = None,
         timeout: float = 900.0, poll: float = 2.0, wire: Wire | None = None,
         on_code: Callable[[str], None] | None = None,
         on_wait: Callable[[dict[str, Any]], None] | None = None,
         clock: Callable[[], float] = time.time,
         sleep: Callable[[float], None] = time.sleep) -> JoinOutcome:
    """Ask the bootstrap at ``url`` to let this node in, wait for the answer, apply the grant.

    Raises:
        IntegrityError: the server's certificate is not the pinned one
            (nothing was sent), or an answer was tampered with.
        JoinRefusedError: refused, rejected, or expired.
        UnavailableError: the bootstrap cannot be reached, or no answer
            came within ``timeout`` (run ``join`` again to keep waiting).
    """
    pin = normalize_fingerprint(fingerprint)
    client = _Client(url, pin, wire=wire)
    os.makedirs(home, mode=0o700, exist_ok=True)
    identity = node_identity(home, ssh_key)
    recipient = identity.to_recipient().text
    state_path = os.path.join(home, STATE_FILE)
    state = _resume(state_path, url, name, pin, recipient)
    if state is None:
        message = JoinMessage(name, recipient, b64(_secrets.token_bytes(NONCE_BYTES)),
                              int(clock()), pin)
        answer = client.call("/v1/sys/macula/join", message.to_json())
        if answer.get("code") != message.code:
            raise IntegrityError("the bootstrap answered with another join code: the "
                                 "request was changed on its way")
        challenge = open_sealed(answer.get("challenge"), [identity], "the join challenge")
        state = {"url": url, "name": name, "pin": pin, "recipient": recipient,
                 "request_id": str(answer["request_id"]), "proof": b64(challenge),
                 "code": message.code, "expires_at": answer.get("expires_at")}
        atomic_write(state_path, json.dumps(state).encode())
    if on_code is not None:
        on_code(state["code"])
    deadline = clock() + timeout
    path = "/v1/sys/macula/join/" + urllib.parse.quote(state["request_id"])
    while True:
        answer = client.call(path, {"proof": state["proof"]})
        status = answer.get("status")
        if status == "approved":
            grant = open_sealed(answer.get("grant"), [identity], "the grant")
            with open_secrets() as secrets:
                applied = apply_grant(grant, secrets, home)
            _forget(state_path)
            return JoinOutcome(name, recipient, state["code"], applied)
        if status in ("rejected", "expired", "delivered", "removed"):
            _forget(state_path)
            raise JoinRefusedError(_FINAL[status].format(name=name))
        if status not in ("pending", "unproven"):
            raise FormatError(f"the bootstrap answered an unknown status {status!r}")
        if on_wait is not None:
            on_wait(answer)
        if clock() >= deadline:
            raise UnavailableError(f"no approval of {name} within {timeout:g} s",
                                   hint="run the same join command again to keep waiting")
        sleep(poll)


_FINAL: Final = {
    "rejected": "the bootstrap rejected the join request of {name}",
    "expired": "the join request of {name} expired before it was approved",
    "delivered": "the grant of {name} was delivered already; this node did not keep it",
    "removed": "node {name} was removed on the bootstrap",
}


def _resume(path: str, url: str, name: str, pin: str, recipient: str
            ) -> dict[str, Any] | None:
    """The saved request of the same bootstrap, name and key (the bootstrap says whether
    it still waits)."""
    try:
        with open(path, "rb") as f:
            state = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    same = (state.get("url"), state.get("name"), state.get("pin"), state.get("recipient")) \
        == (url, name, pin, recipient)
    return state if same and isinstance(state.get("request_id"), str) else None


def _forget(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _Client:
    """JSON POSTs to the bootstrap over TLS pinned to one certificate fingerprint."""

    def __init__(self, url: str, pin: str, *, wire: Wire | None, timeout: float = 10.0
                 ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"the bootstrap address must be https://HOST:PORT, not {url!r}",
                              hint="join needs TLS: the certificate is what you pin")
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 443
        self.pin = pin
        self.wire = wire
        self.timeout = timeout

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        conn = self._connect()
        try:
            if self.wire is not None:
                self.wire("sent", f"POST {path}\n".encode() + payload)
            conn.request("POST", path, body=payload,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise UnavailableError(f"the bootstrap at {self.url} did not answer "
                                   f"({exc.__class__.__name__})") from None
        finally:
            conn.close()
        if self.wire is not None:
            self.wire("received", f"{resp.status}\n".encode() + data)
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise FormatError(f"the bootstrap at {self.url} answered {resp.status} "
                              "without JSON")
        if resp.status >= 400:
            errors = doc.get("errors") or []
            reason = str(errors[0]) if errors else f"HTTP {resp.status}"
            if resp.status >= 500:
                raise UnavailableError(f"the bootstrap could not take the request: {reason}")
            raise JoinRefusedError(f"the bootstrap refused: {reason}")
        return doc

    def _connect(self) -> http.client.HTTPSConnection:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust is the pinned fingerprint, checked below
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                           context=context)
        try:
            conn.connect()
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise UnavailableError(f"cannot reach the bootstrap at {self.url} "
                                   f"({exc.__class__.__name__})") from None
        sock = conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        seen = fingerprint_of_der(der) if der else ""
        if not hmac.compare_digest(seen, self.pin):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            raise IntegrityError(
                f"the server at {self.url} presents a certificate with fingerprint "
                f"{colon_form(seen) or 'none'}, not the pinned {colon_form(self.pin)}: nothing "
                "was sent", hint="check the fingerprint serve printed on the bootstrap")
        return conn


