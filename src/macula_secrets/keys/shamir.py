"""Shamir secret sharing over GF(2^8), compatible with sops key groups.

A secret is split byte by byte: each byte is the constant term of a random
polynomial of degree ``threshold - 1`` over GF(256) with the AES reduction
polynomial x^8+x^4+x^3+x+1 (0x11B). Share ``i`` (0-based) holds the
polynomial values at x = i + 1, one per secret byte, followed by one byte
``x``: the layout sops stores in each key group. Any ``threshold`` shares
give the secret back by Lagrange interpolation at x = 0; fewer reveal
nothing about it.

The same functions serve sops key groups and, later, the store's emergency
recovery shares.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from ..errors import KeySourceError, ThresholdError

__all__ = ["combine", "split"]

MAX_SHARES: Final = 255


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # Multiply by the generator 3 (x + 1) in GF(256)/0x11B.
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)
        x &= 0xFF
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] + 255 - _LOG[b]]


def split(
    secret: bytes,
    shares: int,
    threshold: int,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> list[bytes]:
    """Split ``secret`` into ``shares`` shares, any ``threshold`` of which recover it.

    Each share is ``len(secret) + 1`` bytes: the y values, then x (1..shares).

    Raises:
        ValueError: ``2 <= threshold <= shares <= 255`` does not hold, or the
            secret is empty.
    """
    if shares < threshold:
        raise ValueError("shares cannot be fewer than the threshold")
    if shares > MAX_SHARES:
        raise ValueError("shares cannot exceed 255")
    if threshold < 2:
        raise ValueError("threshold must be at least 2")
    if not secret:
        raise ValueError("cannot split an empty secret")
    out = [bytearray(len(secret) + 1) for _ in range(shares)]
    for i in range(shares):
        out[i][-1] = i + 1
    for idx, byte in enumerate(secret):
        coeffs = [byte, *randbytes(threshold - 1)]
        for i in range(shares):
            x = i + 1
            # Horner's rule from the highest coefficient down.
            y = 0
            for c in reversed(coeffs):
                y = _mul(y, x) ^ c
            out[i][idx] = y
    return [bytes(s) for s in out]


def combine(shares: Sequence[bytes], *, threshold: int | None = None) -> bytes:
    """Recover the secret from shares (each: y values followed by one x byte).

    Raises:
        ThresholdError: fewer shares than ``threshold`` (or than two).
        KeySourceError: shares of different lengths, or two with the same x.
    """
    need = max(threshold or 2, 2)
    if len(shares) < need:
        raise ThresholdError(
            f"{len(shares)} share(s) recovered, {need} needed",
            threshold=need,
            recovered=len(shares),
        )
    length = len(shares[0])
    if length < 2 or any(len(s) != length for s in shares):
        raise KeySourceError("the shares have different lengths")
    xs = [s[-1] for s in shares]
    if len(set(xs)) != len(xs):
        raise KeySourceError("two shares have the same index")
    if 0 in xs:
        raise KeySourceError("a share has index 0")
    # Lagrange basis at x = 0: prod(x_j / (x_i ^ x_j)) for j != i (in GF(2^8),
    # subtraction is XOR).
    basis = []
    for i, xi in enumerate(xs):
        b = 1
        for j, xj in enumerate(xs):
            if i != j:
                b = _mul(b, _div(xj, xi ^ xj))
        basis.append(b)
    out = bytearray(length - 1)
    for idx in range(length - 1):
        acc = 0
        for share, b in zip(shares, basis, strict=True):
            acc ^= _mul(share[idx], b)
        out[idx] = acc
    return bytes(out)
