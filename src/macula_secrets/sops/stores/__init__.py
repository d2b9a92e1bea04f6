"""File formats: one module per format, all turning bytes into trees and back.

A store never encrypts or decrypts; it only parses and prints. Each module
exposes a module-level object satisfying :class:`Store`. :func:`get_store`
imports only the module asked for, so decrypting a YAML file never pays for
the JSON or INI code.

Format names and extension rules are those of sops (SOPS_FORMAT.md 5):
``.yaml``/``.yml`` -> yaml, ``.json`` -> json, ``.env`` -> dotenv,
``.ini`` -> ini, anything else -> binary; matching is case-sensitive.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final, Literal, Protocol

from ...errors import ConfigError

if TYPE_CHECKING:
    from ..tree import Branch

__all__ = ["FORMATS", "Format", "Store", "format_for_path", "get_store"]

Format = Literal["yaml", "json", "dotenv", "ini", "binary"]
FORMATS: Final[tuple[Format, ...]] = ("yaml", "json", "dotenv", "ini", "binary")


class Store(Protocol):
    """Parse and print one file format. Stateless apart from options; thread-safe."""

    name: Format

    def load_plain(self, data: bytes) -> list[Branch]:
        """Parse a plaintext file into branches (one per document).

        Raises ``FormatError`` (or ``LimitError``) for input it cannot parse.
        """
        ...

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        """Parse an encrypted file into ``(branches, raw metadata)``.

        The metadata is removed from the branches and returned as a plain
        tree for ``Metadata.from_branch``. Raises ``FormatError`` with the
        text ``sops metadata not found`` when there is none.
        """
        ...

    def has_metadata(self, branches: list[Branch]) -> bool:
        """Tell whether plaintext branches contain what looks like SOPS metadata."""
        ...

    def emit_plain(self, branches: list[Branch]) -> bytes:
        """Print branches as a plaintext file (trailing newline included)."""
        ...

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        """Print encrypted branches with ``metadata`` (from ``Metadata.to_branch``)."""
        ...

    def emit_value(self, value: object) -> bytes:
        """Print one extracted non-string value (``decrypt --extract``)."""
        ...


_EXTENSIONS: Final[dict[str, Format]] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
    ".ini": "ini",
}


def format_for_path(path: str) -> Format:
    """Return the format sops would pick for ``path`` from its extension."""
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    return "binary"


def get_store(name: str, *, indent: int | None = None) -> Store:
    """Return the store for format ``name``.

    ``indent`` is the output indentation (YAML: spaces, default 4; JSON: spaces,
    default a TAB), as ``.sops.yaml``'s ``stores`` section and ``--indent`` set it.
    """
    if name not in FORMATS:
        raise ConfigError(
            f"unknown format {name!r}", hint="use one of: " + ", ".join(FORMATS)
        )
    module = importlib.import_module(f"{__name__}.{name}")
    store: Store = module.make_store(indent=indent)
    return store
