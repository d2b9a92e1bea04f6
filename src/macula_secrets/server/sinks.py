"""Audit sinks: copies of the server's audit lines where operators already look.

The hash-chained file (:mod:`.audit`) stays the record ``audit verify``
checks; a sink receives each of its lines, byte for byte (the same JSON
object, ``prev`` and ``hash`` included, so a copy can be matched to the
file). The lines hold HMACs of values and tokens, never the values.

Kinds: ``file`` (JSON lines appended to another file, for a log shipper),
``socket`` (JSON lines over a Unix or TCP stream), ``syslog`` (RFC 3164
datagrams to ``/dev/log`` or ``udp://host:port``), ``journald`` (its
native datagram protocol, with ``MACULA_AUDIT_*`` fields) and ``logging``
(one record per line on a Python logger, the parsed entry in
``record.macula_audit``).

Each sink is *required* or *best-effort* (:class:`Fanout`). A required
sink is written before the request is answered, on the caller's thread;
when it does not take the line the request fails (503, no value sent), as
Vault fails a request that no audit device took. A best-effort sink is fed
through a bounded queue by its own thread: it never delays a request, and
a line it could not take, or that found its queue full, counts as one
failure.

Not for: anything but audit lines; metrics are :mod:`.metrics`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from ..errors import ConfigError, UnavailableError

if TYPE_CHECKING:
    from .._config import SinkConfig

__all__ = [
    "Fanout",
    "FileSink",
    "JournaldSink",
    "LoggingSink",
    "Sink",
    "SocketSink",
    "SyslogSink",
    "open_sink",
]

QUEUE_SIZE: Final = 10_000
"""Lines a best-effort sink may fall behind before new ones count as failures."""
JOURNALD_SOCKET: Final = "/run/systemd/journal/socket"
SYSLOG_SOCKET: Final = "/dev/log"
_FACILITIES: Final = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5,
                      "authpriv": 10, **{f"local{i}": 16 + i for i in range(8)}}
_INFO: Final = 6


class Sink(Protocol):
    """Where copies of audit lines go; ``emit`` is called from one thread at a time."""

    name: str
    kind: str

    def emit(self, line: bytes) -> None:
        """Take one line (JSON and ``\\n``); raise ``OSError`` when it was not taken."""

    def close(self) -> None:
        """Release the file or socket (idempotent)."""


def _reason(exc: BaseException) -> str:
    """An error's reason without paths or payload: a strerror or the class name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return exc.__class__.__name__


class FileSink:
    """JSON lines appended to a file (created 0600), one ``write`` per line."""

    kind = "file"

    def __init__(self, path: str, *, name: str | None = None) -> None:
        self.path = path
        self.name = name or f"file:{path}"
        self._fd: int | None = None
        self._size = 0

    def __repr__(self) -> str:
        return f"FileSink({self.path!r})"

    def emit(self, line: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                               0o600)
            self._size = os.fstat(self._fd).st_size
        view = memoryview(line)
        try:
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
        except OSError:
            # A torn line must not stay: a reader would glue the next one onto it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def parse_stream_address(address: str, what: str) -> tuple[int, str | tuple[str, int]]:
    """``unix:///path`` or ``tcp://host:port`` to ``(family, address)``.

    Raises:
        ConfigError: any other form (``what`` names the setting).
    """
    if address.startswith("unix://"):
        path = address[len("unix://"):]
        if not path.startswith("/"):
            raise ConfigError(f"{what} must be unix:///absolute/path or tcp://host:port")
        return socket.AF_UNIX, path
    for scheme in ("tcp://", "udp://"):
        if address.startswith(scheme):
            host, sep, port = address[len(scheme):].rpartition(":")
            if sep and host and port.isdigit() and 0 < int(port) < 65536:
                family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
                return family, (host.strip("[]"), int(port))
    raise ConfigError(f"{what} must be unix:///absolute/path or tcp://host:port, "
                      f"not {address!r}")


class SocketSink:
    """JSON lines over a stream socket (Unix or TCP), connected on first use.

    A send that fails closes the connection and is tried once more on a new
    one (a collector that restarted); the second failure is the line's.
    On TCP a peer that closed may still accept one write into the kernel's
    buffer: the failure shows on the next line.
    """

    kind = "socket"

    def __init__(self, address: str, *, timeout: float = 5.0, name: str | None = None) -> None:
        self.address = address
        self.name = name or f"socket:{address}"
        self.timeout = timeout
        self._family, self._target = parse_stream_address(address, "socket address")
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"SocketSink({self.address!r})"

    def _connect(self) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._target)
        except OSError:
            sock.close()
            raise
        return sock

    def emit(self, line: bytes) -> None:
        for attempt in (1, 2):
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(line, socket.MSG_NOSIGNAL)
                return
            except OSError:
                self.close()
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class _DatagramSink:
    """A datagram to a Unix path or a UDP address, one per line."""

    kind = "datagram"

    def __init__(self, target: str, name: str) -> None:
        self.target = target
        self.name = name
        if target.startswith("udp://"):
            self._family, self._address = parse_stream_address(target, "syslog address")
        elif target.startswith("/"):
            self._family, self._address = socket.AF_UNIX, target
        else:
            raise ConfigError(f"address must be an absolute socket path or udp://host:port, "
                              f"not {target!r}")
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.target!r})"

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(self._family, socket.SOCK_DGRAM)
            self._sock.settimeout(5.0)
        try:
            self._sock.sendto(data, self._address)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class SyslogSink(_DatagramSink):
    """RFC 3164 messages (``<PRI>ident[pid]: {json}``) to a syslog socket.

    Written directly rather than through :class:`logging.handlers.SysLogHandler`,
    which swallows send errors: a required sink must know that a line was lost.
    """

    kind = "syslog"

    def __init__(self, address: str = SYSLOG_SOCKET, *, facility: str = "auth",
                 ident: str = "macula-secrets", name: str | None = None) -> None:
        if facility not in _FACILITIES:
            raise ConfigError(f"syslog facility must be one of {', '.join(_FACILITIES)}, "
                              f"not {facility!r}")
        super().__init__(address, name or f"syslog:{address}")
        self._head = f"<{_FACILITIES[facility] * 8 + _INFO}>{ident}[{os.getpid()}]: ".encode()

    def emit(self, line: bytes) -> None:
        self._send(self._head + line.rstrip(b"\n"))


class JournaldSink(_DatagramSink):
    """systemd-journald's native protocol: ``MESSAGE`` is the line, plus fields an
    operator can filter on (``journalctl MACULA_AUDIT_RESULT=unavailable``)."""

    kind = "journald"

    def __init__(self, address: str = JOURNALD_SOCKET, *, ident: str = "macula-secrets",
                 name: str | None = None) -> None:
        super().__init__(address, name or f"journald:{address}")
        self._head = f"SYSLOG_IDENTIFIER={ident}\nPRIORITY={_INFO}\n".encode()

    def emit(self, line: bytes) -> None:
        entry = json.loads(line)
        fields = [self._head, b"MESSAGE=", line.rstrip(b"\n"), b"\n"]
        for field in ("op", "result", "status", "tenant", "app", "key", "accessor"):
            value = entry.get(field)
            if value is not None and "\n" not in str(value):
                fields += (b"MACULA_AUDIT_", field.upper().encode(), b"=",
                           str(value).encode(), b"\n")
        self._send(b"".join(fields))


class LoggingSink:
    """One record per line on a Python logger: the message is the JSON line, the parsed
    entry is ``record.macula_audit`` (for structured formatters)."""

    kind = "logging"

    def __init__(self, logger: str = "macula_secrets.audit", *, level: int = logging.INFO,
                 name: str | None = None) -> None:
        self.logger = logging.getLogger(logger)
        self.level = level
        self.name = name or f"logging:{logger}"

    def __repr__(self) -> str:
        return f"LoggingSink({self.logger.name!r})"

    def emit(self, line: bytes) -> None:
        text = line.decode().rstrip("\n")
        self.logger.log(self.level, "%s", text, extra={"macula_audit": json.loads(text)})

    def close(self) -> None:
        return None


def open_sink(config: SinkConfig) -> Sink:
    """The sink a ``[[audit.sinks]]`` table describes (nothing is connected yet)."""
    kind = config.type
    if kind == "file":
        return FileSink(config.path or "", name=config.name)
    if kind == "socket":
        return SocketSink(config.address or "", timeout=config.timeout, name=config.name)
    if kind == "syslog":
        return SyslogSink(config.address or SYSLOG_SOCKET, facility=config.facility,
                          name=config.name)
    if kind == "journald":
        return JournaldSink(config.address or JOURNALD_SOCKET, name=config.name)
    level = logging.getLevelName(config.level.upper())
    return LoggingSink(config.logger, level=level if isinstance(level, int) else logging.INFO,
                       name=config.name)


@dataclass
class SinkStats:
    """What a sink did since the server started (read by health and metrics)."""

    name: str
    kind: str
    required: bool
    lines: int = 0
    errors: int = 0
    """Lines the sink did not take (counted by the thread that wrote to it)."""
    dropped: int = 0
    """Lines a best-effort sink's full queue refused (counted by the request's thread)."""
    last_error: str | None = None
    """The reason of the last failure (a strerror; never a line's content)."""

    @property
    def failures(self) -> int:
        """Lines that did not reach the sink (two counters: each has one writer thread)."""
        return self.errors + self.dropped

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "type": self.kind, "required": self.required,
                "lines": self.lines, "failures": self.failures, "last_error": self.last_error}


class _Worker:
    """A best-effort sink's queue and thread."""

    def __init__(self, sink: Sink, stats: SinkStats, size: int) -> None:
        self.sink = sink
        self.stats = stats
        self.queue: queue.Queue[bytes | None] = queue.Queue(size)
        self.thread = threading.Thread(target=self._run, name=f"audit-sink-{sink.kind}",
                                       daemon=True)
        self.thread.start()

    def offer(self, line: bytes) -> None:
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.stats.dropped += 1
            self.stats.last_error = "queue full"

    def _run(self) -> None:
        while True:
            line = self.queue.get()
            if line is None:
                return
            try:
                self.sink.emit(line)
            except Exception as exc:  # a best-effort sink never stops the others
                self.stats.errors += 1
                self.stats.last_error = _reason(exc)
            else:
                self.stats.lines += 1

    def close(self, timeout: float) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout)
        self.thread.join(timeout)
        self.sink.close()


class Fanout:
    """Required sinks written in line, best-effort sinks fed through their threads.

    Args:
        sinks: ``(sink, required)`` pairs, in the order they are written.
        queue_size: lines a best-effort sink may fall behind.
    """

    def __init__(self, sinks: Sequence[tuple[Sink, bool]], *, queue_size: int = QUEUE_SIZE
                 ) -> None:
        self.stats = [SinkStats(s.name, s.kind, required) for s, required in sinks]
        self._required = [(s, st) for (s, req), st in zip(sinks, self.stats, strict=True)
                          if req]
        self._workers = [_Worker(s, st, queue_size)
                         for (s, req), st in zip(sinks, self.stats, strict=True) if not req]

    def __repr__(self) -> str:
        return f"Fanout({[s.name for s in self.stats]!r})"

    def deliver(self, line: bytes) -> None:
        """Write ``line`` to every required sink, queue it for the others.

        Raises:
            UnavailableError: a required sink did not take it (the request must fail).
        """
        for sink, stats in self._required:
            try:
                sink.emit(line)
            except Exception as exc:
                stats.errors += 1
                stats.last_error = _reason(exc)
                raise UnavailableError(f"cannot write to the audit sink {sink.name}: "
                                       f"{stats.last_error}; request refused") from None
            stats.lines += 1
        for worker in self._workers:
            worker.offer(line)

    def close(self, timeout: float = 5.0) -> None:
        """Flush the best-effort queues (up to ``timeout`` each) and close every sink."""
        for worker in self._workers:
            worker.close(timeout)
        for sink, _stats in self._required:
            sink.close()
