"""The dotenv store: ``KEY=VALUE`` files read and written exactly as sops 3.11 does.

The format is sops's own, not a shell's (SOPS_FORMAT.md 5.3): lines split on
``\\n`` only, blank lines skipped, a line starting with ``#`` is a comment,
anything else splits at the first ``=`` with no trimming, no quote handling and
no ``export`` keyword; ``\\n`` in a value stands for a newline. Every value is a
string. Metadata is stored as ``sops_``-prefixed flattened keys (see
``_flat.py``) after the data, sorted byte-wise.

Most callers want :func:`macula_secrets.sops.stores.get_store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...errors import FormatError
from ..tree import Branch, Comment
from ._flat import (
    flatten_metadata,
    go_type_name,
    is_complex,
    to_utf8,
    unflatten_metadata,
    value_to_string,
)

if TYPE_CHECKING:
    from . import Format, Store

__all__ = ["METADATA_PREFIX", "DotenvStore", "make_store"]

#: Keys starting with this hold SOPS metadata.
METADATA_PREFIX: Final = "sops_"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            f"dotenv input is not valid UTF-8 (line {line}, byte offset {exc.start})",
            hint="dotenv files must be UTF-8 text; binary files need --input-type binary",
        ) from None


class DotenvStore:
    """Reads and writes SOPS dotenv files; stateless; thread-safe."""

    name: Format = "dotenv"

    def load_plain(self, data: bytes) -> list[Branch]:
        """Parse a dotenv file into one flat branch (comments kept as items)."""
        branch = Branch()
        for number, line in enumerate(_decode(data).split("\n"), 1):
            if not line:
                continue
            if line[0] == "#":
                branch.append((Comment(line[1:]), None))
                continue
            key, sep, value = line.partition("=")
            if not sep:
                # sops prints the whole line; it may be a secret, so only its number here.
                raise FormatError(
                    f"invalid dotenv input line {number}: no '=' found",
                    hint="every line must be KEY=VALUE, a #comment or empty",
                )
            branch.append((key, value.replace("\\n", "\n")))
        return [branch]

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        """Parse an encrypted dotenv file; ``sops_*`` keys become the raw metadata."""
        (branch,) = self.load_plain(data)
        kept = Branch()
        flat: list[tuple[str, str]] = []
        for key, value in branch:
            if isinstance(key, str) and key.startswith(METADATA_PREFIX):
                flat.append((key[len(METADATA_PREFIX) :], str(value)))
            else:
                kept.append((key, value))
        if not flat:
            raise FormatError("sops metadata not found")
        return [kept], unflatten_metadata(flat)

    def has_metadata(self, branches: list[Branch]) -> bool:
        """Tell whether the file has any ``sops_``-prefixed key."""
        return any(
            isinstance(k, str) and k.startswith(METADATA_PREFIX) for b in branches[:1] for k, _ in b
        )

    def emit_plain(self, branches: list[Branch]) -> bytes:
        """Print the first branch as ``KEY=VALUE`` lines.

        Raises:
            FormatError: a value is a mapping or a list.
        """
        if not branches:
            raise FormatError("no document to write")
        return to_utf8("".join(_lines(branches[0])))

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        """Print encrypted data followed by the flattened ``sops_*`` metadata."""
        if not branches:
            raise FormatError("no document to write")
        lines = _lines(branches[0])
        for key, text in flatten_metadata(metadata):
            lines.append(f"{METADATA_PREFIX}{key}={text}\n")
        return to_utf8("".join(lines))

    def emit_value(self, value: object) -> bytes:
        """Print one extracted value; sops's dotenv store can only print strings."""
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return to_utf8(value)
        raise FormatError(
            f"the dotenv store only supports emitting strings, got {go_type_name(value)}",
            hint="use another --output-type to extract non-string values",
        )


def _lines(branch: Branch) -> list[str]:
    lines: list[str] = []
    for key, value in branch:
        if is_complex(value):
            raise FormatError(
                f"cannot use complex value in dotenv file; offending key {key}",
                hint="dotenv holds only flat KEY=VALUE pairs; use another --output-type",
            )
        if isinstance(key, Comment):
            lines.append(f"#{key.value}\n")
            continue
        text = value_to_string(value)
        if isinstance(value, (str, bytes)):
            text = text.replace("\n", "\\n")
        lines.append(f"{key}={text}\n")
    return lines


if TYPE_CHECKING:
    _conforms: Store = DotenvStore()  # static check against the Store protocol


def make_store(indent: int | None = None) -> DotenvStore:
    """Return the dotenv store (``indent`` does not apply to dotenv)."""
    return DotenvStore()
