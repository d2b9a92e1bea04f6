"""The few primitives the package needs beyond AES-GCM and age, in one place.

SHA-512 comes from ``cryptography`` (already loaded for AES-GCM) rather than
``hashlib``: importing ``hashlib`` loads a second OpenSSL and costs several
milliseconds of start-up that ``macula-secrets decrypt`` cannot spare.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes

__all__ = ["constant_time_equal", "sha512_hex"]


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
