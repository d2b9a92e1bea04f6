"""Regular expressions compiled on first use.

Compiling a pattern costs up to a millisecond in CPython; a module-level
``re.compile`` pays that on every start, used or not. Patterns needed only on
rarer paths (floats, timestamps, unusual text) are wrapped in
:class:`LazyPattern` so ``macula-secrets decrypt`` does not pay for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["LazyPattern"]


class LazyPattern:
    """A ``re.Pattern`` stand-in that compiles itself the first time it is used."""

    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern = pattern
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        c = self._compiled
        if c is None:
            c = self._compiled = re.compile(self._pattern, self._flags)
        return c

    @property
    def pattern(self) -> str:
        return self._pattern

    def match(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.match(string, pos)

    def fullmatch(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.fullmatch(string, pos)

    def search(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.search(string, pos)

    def finditer(self, string: str) -> Iterator[re.Match[str]]:
        return self.compiled.finditer(string)
