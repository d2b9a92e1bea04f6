"""The agent process: unlocked key material in memory, for a while, for one user.

Run by ``macula-secrets agent start``. One thread per connection; each
connection is one request. Every entry is forgotten ``ttl`` seconds after
it was given (not after its last use: a session ends even when it is
busy), all of them on ``lock``, and the process removes its socket when it
stops (``stop``, SIGTERM, SIGINT).

The socket folder is created 0700 and the socket 0600; the server also
asks the kernel who is connecting (``SO_PEERCRED``) and answers only its
own uid. Values never reach a log or an error message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import KeySourceError
from . import check_folder

__all__ = ["AgentServer", "serve"]


class _Held:
    """What the agent holds: name -> (value, forget at), under a lock."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        with self._lock:
            item = self._items.get(name)
            if item is None:
                return None
            if self._clock() >= item[1]:
                del self._items[name]
                return None
            return item[0]

    def put(self, name: str, value: bytes) -> None:
        with self._lock:
            self._items[name] = (value, self._clock() + self.ttl)

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            return count

    def count(self) -> int:
        now = self._clock()
        with self._lock:
            for name in [n for n, (_, until) in self._items.items() if now >= until]:
                del self._items[name]
            return len(self._items)


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The agent's socket server; :func:`serve` runs one."""

    daemon_threads = True

    def __init__(self, path: str, ttl: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.path = path
        self.held = _Held(ttl, clock)
        self.started = time.time()
        _prepare_folder(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by an agent that was killed
        old = os.umask(0o177)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Handler(socketserver.StreamRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        if _peer_uid(self.connection) != os.getuid():
            self._reply({"ok": False, "error": "not the agent's user"})
            return
        line = self.rfile.readline(1 << 20)
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            self._reply({"ok": False, "error": "bad request"})
            return
        held = self.server.held
        if op == "get":
            value = held.get(str(request.get("name")))
            self._reply({"ok": True, "value": None if value is None
                         else base64.b64encode(value).decode()})
        elif op == "put":
            try:
                value = base64.b64decode(request["value"], validate=True)
            except (KeyError, ValueError, TypeError):
                self._reply({"ok": False, "error": "bad value"})
                return
            held.put(str(request.get("name")), value)
            self._reply({"ok": True})
        elif op == "lock":
            self._reply({"ok": True, "forgot": held.clear()})
        elif op == "status":
            self._reply({"ok": True, "pid": os.getpid(), "held": held.count(),
                         "ttl": held.ttl, "since": self.server.started})
        elif op == "stop":
            held.clear()
            self._reply({"ok": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self._reply({"ok": False, "error": f"unknown op {op!r}"})

    def _reply(self, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _prepare_folder(path: str) -> None:
    folder = os.path.dirname(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    check_folder(path)


def serve(path: str, ttl: float, *, ready: Callable[[], None] | None = None) -> None:
    """Run the agent until ``stop``, SIGTERM or SIGINT; the socket is removed afterwards.

    Raises:
        KeySourceError: the socket folder is not private, or an agent already runs there.
    """
    from . import AgentClient

    if AgentClient(path).running():
        raise KeySourceError(f"an agent already runs on {path}",
                             hint="macula-secrets agent stop, or agent lock")
    server = AgentServer(path, ttl)

    def stop(_signum: int, _frame: object) -> None:
        server.held.clear()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if ready is not None:
            ready()
        server.serve_forever(poll_interval=0.5)
    finally:
        server.held.clear()
        server.server_close()
