"""The store's barrier: everything the store encrypts goes through these functions.

Envelope encryption, as OpenBao's barrier and KMS envelopes do it: the master
key wraps one data key per (tenant, app); a data key seals the values of its
app. Both layers are AES-256-GCM with a fresh nonce, and both bind their
ciphertext to where it belongs through the associated data:

- a wrapped data key to its tenant, app and data key id, so a wrapped key
  copied to another app's row does not unwrap;
- a value to its tenant, app, key and version, so a ciphertext copied to
  another row or version does not decrypt.

Fields in the associated data are length-prefixed: ``("a", "bc")`` and
``("ab", "c")`` can never produce the same bytes. This module holds no state
and does no I/O; :mod:`.sqlite` stores what it produces and never sees a key.
"""

from __future__ import annotations

import struct
from typing import Final

from .. import _crypto
from ..errors import IntegrityError

__all__ = ["key_id", "open_value", "seal_value", "unwrap_data_key", "wrap_data_key"]

_VALUE_CONTEXT: Final = b"macula-secrets value v1"
_DATA_KEY_CONTEXT: Final = b"macula-secrets data key v1"
_KEY_ID_PURPOSE: Final = b"macula-secrets master key id v1"


def _fields(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)


def value_aad(tenant: str, app: str, key: str, version: int) -> bytes:
    """Associated data of one version of one secret."""
    return _VALUE_CONTEXT + _fields(tenant, app, key) + struct.pack(">Q", version)


def seal_value(data_key: bytes, value: bytes, *, tenant: str, app: str, key: str,
               version: int) -> bytes:
    """Encrypt one version of a secret for storage."""
    return _crypto.aead_seal(data_key, value, value_aad(tenant, app, key, version))


def open_value(data_key: bytes, sealed: bytes, *, tenant: str, app: str, key: str,
               version: int) -> bytes:
    """Decrypt one version of a secret.

    Raises:
        IntegrityError: the ciphertext was changed, or belongs to another
            tenant, app, key or version. The message names the secret only.
    """
    plain = _crypto.aead_open(data_key, sealed, value_aad(tenant, app, key, version))
    if plain is None:
        raise IntegrityError(
            f"integrity check failed for {_where(tenant, app)}/{key} version {version}: "
            "the stored ciphertext was changed or moved"
        )
    return plain


def _data_key_aad(tenant: str, app: str, dk_id: int) -> bytes:
    return _DATA_KEY_CONTEXT + _fields(tenant, app) + struct.pack(">Q", dk_id)


def wrap_data_key(master_key: bytes, data_key: bytes, *, tenant: str, app: str,
                  dk_id: int) -> bytes:
    """Encrypt a data key with the master key, bound to its tenant, app and id."""
    return _crypto.aead_seal(master_key, data_key, _data_key_aad(tenant, app, dk_id))


def unwrap_data_key(master_key: bytes, wrapped: bytes, *, tenant: str, app: str,
                    dk_id: int) -> bytes:
    """Decrypt a wrapped data key.

    Raises:
        IntegrityError: the wrapped key was changed or copied from another app.
    """
    key = _crypto.aead_open(master_key, wrapped, _data_key_aad(tenant, app, dk_id))
    if key is None or len(key) != _crypto.KEY_SIZE:
        raise IntegrityError(
            f"integrity check failed for the data key of {_where(tenant, app)}: "
            "the wrapped key was changed or moved"
        )
    return key


def key_id(master_key: bytes) -> bytes:
    """A 16-byte id of the master key, safe to store and show (HKDF, one way)."""
    return _crypto.derive(master_key, _KEY_ID_PURPOSE, length=16)


def _where(tenant: str, app: str) -> str:
    return app if tenant == "default" else f"{tenant}/{app}"
