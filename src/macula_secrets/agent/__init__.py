"""Unlock once: the agent that holds unlocked keys for a session, and its client.

(Imports are local: every command calls :func:`use_if_running`, and ``decrypt``
must start without json or socket when no agent runs.)

``macula-secrets agent start`` runs :mod:`macula_secrets.agent.server`: it
keeps unsealed master keys and unlocked age identities in memory for a
while (``--ttl``, 15 minutes by default), on a Unix socket in a folder only
its user can open (0700; the server also checks the peer's uid with
``SO_PEERCRED``). The CLI and ``Secrets.open`` use it when it runs
(:func:`use_if_running`): before asking for a passphrase, unsealing with a
TPM or decrypting a passphrase-protected identity they ask the agent, and
they give it what they unlocked. So a passphrase is typed once per session,
not once per file (sops issues 885 and 1079 ask for this).
``macula-secrets agent lock`` forgets everything at once.

The protocol is one JSON object per line, one request per connection::

    {"op": "get", "name": "sealed-master-key:<sha256>"} -> {"ok": true, "value": "<b64>"|null}
    {"op": "put", "name": ..., "value": "<b64>"}         -> {"ok": true}
    {"op": "lock"} / {"op": "status"} / {"op": "stop"}

Names are digests of the locked material (``keys/_unlocked.py``), never
paths or values.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any, Final

from .. import _env
from ..errors import KeySourceError

__all__ = ["AgentClient", "socket_path", "use_if_running"]

SOCKET_NAME: Final = "agent.sock"
_TIMEOUT: Final = 5.0


def socket_path(env: Mapping[str, str]) -> str:
    """``$MACULA_SECRETS_AGENT_SOCK``, else ``$XDG_RUNTIME_DIR/macula-secrets/agent.sock``,
    else ``/tmp/macula-secrets-<uid>/agent.sock``."""
    explicit = env.get(_env.MACULA_SECRETS_AGENT_SOCK)
    if explicit:
        return explicit
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "macula-secrets", SOCKET_NAME)
    return os.path.join("/tmp", f"macula-secrets-{os.getuid()}", SOCKET_NAME)  # noqa: S108


def check_folder(path: str) -> None:
    """Refuse a socket folder that is not ours alone (another user could impersonate us)."""
    folder = os.path.dirname(path)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
            or stat.S_IMODE(info.st_mode) & 0o077:
        raise KeySourceError(
            f"agent folder {folder} is not a private folder of this user",
            hint=f"remove it, or run: chmod 700 {folder}")


class AgentClient:
    """Talks to a running agent; doubles as the keys layer's unlock hook."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"AgentClient({self.path!r})"

    def call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """One request; ``OSError`` when no agent answers."""
        import json
        import socket

        check_folder(self.path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_TIMEOUT)
            sock.connect(self.path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        try:
            reply: dict[str, Any] = json.loads(data)
        except ValueError:
            raise OSError("the agent sent no answer") from None
        if not reply.get("ok"):
            raise OSError(str(reply.get("error") or "the agent refused the request"))
        return reply

    def get(self, name: str) -> bytes | None:
        import base64

        value = self.call({"op": "get", "name": name}).get("value")
        return None if value is None else base64.b64decode(value)

    def put(self, name: str, value: bytes) -> None:
        import base64

        self.call({"op": "put", "name": name, "value": base64.b64encode(value).decode()})

    def lock(self) -> int:
        """Forget everything; how many entries were held."""
        return int(self.call({"op": "lock"}).get("forgot", 0))

    def status(self) -> dict[str, Any]:
        return self.call({"op": "status"})

    def stop(self) -> None:
        self.call({"op": "stop"})

    def running(self) -> bool:
        try:
            self.status()
        except (OSError, KeySourceError):
            return False
        return True


def use_if_running(env: Mapping[str, str]) -> AgentClient | None:
    """Install the agent as the unlock hook when its socket is there; the client, or None."""
    from ..keys import _unlocked

    path = socket_path(env)
    if not os.path.exists(path):
        _unlocked.install(None)
        return None
    client = AgentClient(path)
    _unlocked.install(client)
    return client
