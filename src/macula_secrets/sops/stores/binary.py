"""The binary store: any file, encrypted whole as one value (SOPS_FORMAT.md 5.5).

The plaintext is the file's raw bytes, held as a single ``data`` item whose
value is ``bytes`` (never decoded: binary files need not be UTF-8). The
encrypted form is a JSON file, ``{"data": "ENC[...]", "sops": {...}}``, read
and written by the JSON store (``json.py``) with the ``json_binary`` indent.

Most callers want :func:`macula_secrets.sops.stores.get_store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...errors import FormatError
from ..tree import METADATA_KEY, Branch
from ._flat import to_utf8
from .json import JSONStore

if TYPE_CHECKING:
    from . import Format, Store

__all__ = ["DATA_KEY", "BinaryStore", "make_store"]

#: The one key of a binary file's tree.
DATA_KEY: Final = "data"

_NOT_BINARY_HINT: Final = (
    "this is likely not an encrypted binary file; if not, use --output-type "
    "to select the correct output type"
)


class BinaryStore:
    """Reads raw bytes, writes them back byte-exact; JSON when encrypted; thread-safe."""

    name: Format = "binary"

    def __init__(self, indent: int | None = None) -> None:
        self._json = JSONStore(indent)

    def load_plain(self, data: bytes) -> list[Branch]:
        """Wrap the whole file, whatever its bytes, as ``{"data": <bytes>}``."""
        return [Branch([(DATA_KEY, bytes(data))])]

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        """Parse the JSON envelope of an encrypted binary file."""
        return self._json.load_encrypted(data)

    def has_metadata(self, branches: list[Branch]) -> bool:
        """Tell whether the tree has a top-level ``sops`` key (as sops checks)."""
        return any(b.index_of(METADATA_KEY) >= 0 for b in branches)

    def emit_plain(self, branches: list[Branch]) -> bytes:
        """Return the bytes of the ``data`` item exactly, with nothing added.

        Raises:
            FormatError: the tree has no ``data`` item or it is not a string.
        """
        if len(branches) != 1:
            raise FormatError(
                "error emitting binary store: there must be exactly one tree branch",
                hint=_NOT_BINARY_HINT,
            )
        for key, value in branches[0]:
            if key == DATA_KEY and key.__class__ is str:
                if isinstance(value, bytes):
                    return value
                if isinstance(value, str):
                    return to_utf8(value)
                raise FormatError(
                    "error emitting binary store: 'data' key in tree does not have a string value",
                    hint=_NOT_BINARY_HINT,
                )
        raise FormatError(
            "error emitting binary store: no binary data found in tree", hint=_NOT_BINARY_HINT
        )

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        """Print the encrypted tree as JSON, metadata last."""
        return self._json.emit_encrypted(branches, metadata)

    def emit_value(self, value: object) -> bytes:
        """Refuse: a binary file has no structure to extract a value from."""
        raise FormatError(
            "binary files are not structured and extracting a single value is not possible",
            hint="use --output-type to print the value in a structured format",
        )


if TYPE_CHECKING:
    _conforms: Store = BinaryStore()  # static check against the Store protocol


def make_store(indent: int | None = None) -> BinaryStore:
    """Return the binary store; ``indent`` applies to the encrypted JSON envelope."""
    return BinaryStore(indent)
