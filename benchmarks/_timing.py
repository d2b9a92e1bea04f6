"""Small helpers the benchmark scripts share: test data, a clock, formatting.

    from _timing import ALPHABET, fmt_t, key, note, ns, one, value
"""

from __future__ import annotations

import random
import string
import sys
import time
from collections.abc import Callable

ALPHABET = string.ascii_letters + string.digits

__all__ = ["ALPHABET", "fmt_t", "key", "note", "ns", "one", "value"]


def key(i: int) -> str:
    """The name of the i-th benchmark key: ``key_00042``."""
    return f"key_{i:05d}"


def value(rng: random.Random) -> str:
    """A 40-character random ASCII value (the size of a typical password or DSN)."""
    return "".join(rng.choices(ALPHABET, k=40))


def ns() -> int:
    return time.perf_counter_ns()


def one(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` took."""
    t = ns()
    fn()
    return (ns() - t) / 1e9


def fmt_t(seconds: float | None) -> str:
    """``0.56 µs``, ``1.60 ms``, ``2.10 s``; ``-`` for no figure."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def note(msg: str) -> None:
    """Progress on stderr, so that stdout holds only the results."""
    print("... " + msg, file=sys.stderr, flush=True)
