"""A floor for a Python server's start: no server framework, no app.

It imports what any TLS-capable Python secret server on this stack must
(asyncio with uvloop, httptools, ssl, sqlite3, AES-GCM from cryptography,
json, hmac, dataclasses, typing), listens on ``127.0.0.1:PORT`` and answers
every request with 200 ``{}``. ``bench_start.py`` times it beside OpenBao to
show how much of a start the interpreter and those imports already take.

    python benchmarks/_floor_server.py PORT
"""

from __future__ import annotations

import asyncio
import dataclasses  # noqa: F401 - imported for its cost, as servers do
import hmac  # noqa: F401
import json  # noqa: F401
import sqlite3  # noqa: F401
import ssl  # noqa: F401
import sys
import typing  # noqa: F401

import httptools
import uvloop
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401

_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class _Protocol(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's, a Transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(_ANSWER)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(_Protocol, "127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1])))
