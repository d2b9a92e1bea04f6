"""The primitives the package needs beyond age, in one place: AEAD, HKDF, hashes.

SHA-512 comes from ``cryptography`` (already loaded for AES-GCM) rather than
``hashlib``: importing ``hashlib`` loads a second OpenSSL and costs several
milliseconds of start-up that ``macula-secrets decrypt`` cannot spare.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "aead_open",
    "aead_seal",
    "constant_time_equal",
    "derive",
    "random_key",
    "sha512_hex",
]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12

# AESGCM objects are cached per key: building one costs about as much as
# sealing a short value, and the store seals with few keys many times.
_AEAD_CACHE: dict[bytes, AESGCM] = {}


def sha512_hex(parts: Iterable[bytes]) -> str:
    """Upper-case hex SHA-512 of the concatenation of ``parts`` (sops's MAC format)."""
    h = hashes.Hash(hashes.SHA512())
    h.update(b"".join(parts))
    return h.finalize().hex().upper()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time that depends only on their lengths.

    Used for MACs and tokens, where an early exit would tell an attacker how
    many leading bytes they got right. The loop has no data-dependent branch.
    """
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b, strict=True):
        diff |= x ^ y
    return diff == 0


def aead_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a fresh random 96-bit nonce; returns ``nonce || ciphertext || tag``.

    Random nonces are safe here: a data key seals far fewer than the 2**32
    messages after which a collision becomes a real risk (NIST SP 800-38D).
    """
    nonce = os.urandom(NONCE_SIZE)
    return nonce + _aead(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """Open what :func:`aead_seal` made; ``None`` when the tag does not verify.

    Returning ``None`` instead of raising lets the caller raise an error that
    names what failed (an app and key) without this layer knowing about them.
    Callers must treat ``None`` as an integrity failure, never as "empty".
    """
    if len(sealed) < NONCE_SIZE + 16:
        return None
    try:
        return _aead(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        return None


def _aead(key: bytes) -> AESGCM:
    aead = _AEAD_CACHE.get(key)
    if aead is None:
        if len(_AEAD_CACHE) > 4096:
            _AEAD_CACHE.clear()
        aead = _AEAD_CACHE[key] = AESGCM(key)
    return aead


def random_key() -> bytes:
    """A fresh 256-bit key from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def derive(key: bytes, purpose: bytes, *, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``key`` for one ``purpose``: a key (or key id) used for nothing else."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(key)
