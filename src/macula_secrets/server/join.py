"""``sys/macula/join``: the bootstrap's join endpoints, over :class:`~..mesh.desk.JoinDesk`.

``POST /v1/sys/macula/join`` takes a node's request and answers with the
challenge sealed to its key; ``POST /v1/sys/macula/join/<id>`` with
``{"proof": ...}`` is the node's poll (pending, approved with the sealed
grant, rejected, expired). No token: a joining node has none yet; what it
proves instead is that it holds the key it names. The desk's file work
and age sealing run in a worker thread, off the event loop.

Statuses: 409 for a replay or a name already waiting or enrolled, 429 when
too many requests wait, 400 for a malformed one, 404 for an unknown id or
a wrong proof (not told apart), and 404 on a server without TLS, where
joining is not offered: a fingerprint is what a node pins.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, LimitError
from .errors import HTTPError

if TYPE_CHECKING:
    from ..mesh.desk import JoinDesk

__all__ = ["route"]


async def route(desk: JoinDesk | None, method: str, path: str, body: bytes,
                audit: dict[str, Any]) -> tuple[int, bytes]:
    """Answer one join request: ``(status, JSON body)``."""
    if desk is None:
        raise HTTPError(404)
    if method != "POST":
        raise HTTPError(405, f"{method} is not allowed here")
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        raise HTTPError(400, "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "the body must be a JSON object")
    rest = path.removeprefix("sys/macula/join").strip("/")
    try:
        if not rest:
            audit["join"] = {"name": str(doc.get("name"))[:63]}
            answer = await asyncio.to_thread(desk.submit, doc)
            audit["join"]["code"] = answer["code"]
        else:
            audit["join"] = {"request": rest[:8]}
            answer = await asyncio.to_thread(desk.poll, rest, doc.get("proof"))
            audit["join"]["status"] = answer["status"]
    except ConflictError as exc:
        raise HTTPError(409, str(exc)) from None
    except LimitError as exc:
        raise HTTPError(429, str(exc)) from None
    return 200, json.dumps(answer).encode()
