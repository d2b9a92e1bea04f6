"""Unlocked key material shared across processes, through an optional hook (the agent).

Unsealing a master key or unlocking a passphrase-protected identity costs a
prompt (and scrypt, or a TPM round trip). When ``macula-secrets agent``
runs, the shell installs a hook here (:func:`install`), and the keys layer
asks it before unlocking and offers it what it unlocked, so a person types
a passphrase once per session, not once per file or process.

Material is named by the SHA-256 of the *locked* bytes (a sealed blob, an
encrypted identity file) and a kind, so the agent never learns which file
a secret came from, and a changed file is a new name. Without a hook every
call is a no-op: the keys layer itself does no socket I/O.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

__all__ = ["Hook", "held", "install", "name_of", "recall", "remember"]


class Hook(Protocol):
    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, value: bytes) -> None: ...


_hook: Hook | None = None


def install(hook: Hook | None) -> None:
    """Use ``hook`` from now on (``None``: none)."""
    global _hook
    _hook = hook


def name_of(kind: str, locked: bytes) -> str:
    import hashlib  # here, not at import: `decrypt` starts without it (tests/api/test_layers)

    return f"{kind}:{hashlib.sha256(locked).hexdigest()}"


def recall(kind: str, locked: bytes) -> bytes | None:
    """What was unlocked from ``locked`` before, if the hook still holds it."""
    hook = _hook
    if hook is None:
        return None
    try:
        return hook.get(name_of(kind, locked))
    except OSError:
        return None  # the agent went away: unlock here


def remember(kind: str, locked: bytes, value: bytes) -> None:
    """Offer what was unlocked from ``locked`` to the hook (ignored without one)."""
    hook = _hook
    if hook is None:
        return
    with contextlib.suppress(OSError):  # the agent went away: nothing to share
        hook.put(name_of(kind, locked), value)


def held(name: str) -> bytes | None:
    """What the hook holds under ``name`` (a key handed over by ``unlock``), if anything.

    Raises:
        OSError: there is no agent, or it does not answer.
    """
    hook = _hook
    if hook is None:
        raise OSError("no agent is running")
    return hook.get(name)
