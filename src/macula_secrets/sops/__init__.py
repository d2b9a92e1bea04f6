"""SOPS files: read and write them exactly as sops 3.x does, with age keys.

The stable entry points::

    from macula_secrets import sops

    data = sops.load("secrets/console.enc.yaml")         # plain dict, decrypted in process
    doc = sops.open_file("secrets/console.enc.yaml")     # SopsFile: values, metadata, data key
    doc.set('["db"]["password"]', "new")                 # only this value gets new ciphertext
    doc.save()
    sops.encrypt_file("secrets/new.yaml", recipients=["age1..."], in_place=True)

Identities are found as sops finds them (``SOPS_AGE_KEY_FILE``, ``SOPS_AGE_KEY``,
``SOPS_AGE_KEY_CMD``, SSH keys, ``~/.config/sops/age/keys.txt``) unless given.
Recipients come from ``recipients=`` or, when omitted, the ``.sops.yaml``
creation rule for the path. Formats follow the file extension as in sops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..errors import ConfigError
from .document import SopsFile, decrypt_bytes, encrypt_new
from .keygroups import IdentityList, Unwrapper
from .stores import FORMATS, format_for_path, get_store

__all__ = [
    "FORMATS",
    "SopsFile",
    "decrypt",
    "encrypt",
    "encrypt_file",
    "load",
    "open_file",
]

Identities = Unwrapper | Sequence[str] | None


def _unwrapper(identities: Identities) -> Unwrapper:
    if identities is None:
        from ..keys._discovery import IdentitySources

        return IdentitySources.from_environment(os.environ, os.path.expanduser("~"))
    if isinstance(identities, (list, tuple)):
        from ..keys import age

        parsed = []
        for text in identities:
            parsed.extend(age.parse_identities(str(text), source="identities argument"))
        return IdentityList(parsed)
    return identities  # type: ignore[return-value]


def decrypt(
    data: bytes, *, format: str = "yaml", identities: Identities = None,
    ignore_mac: bool = False,
) -> SopsFile:
    """Decrypt the bytes of an encrypted file.

    Raises:
        FormatError: not a SOPS file of that format.
        NoMatchingKeyError: none of the identities can open it.
        IntegrityError: it was changed after it was encrypted.
    """
    return decrypt_bytes(data, format=format, unwrapper=_unwrapper(identities),
                         ignore_mac=ignore_mac)


def open_file(
    path: str | os.PathLike[str], *, format: str | None = None,
    identities: Identities = None, ignore_mac: bool = False,
) -> SopsFile:
    """Decrypt the file at ``path``; :meth:`SopsFile.save` writes it back.

    Raises the same errors as :func:`decrypt`, and ``OSError`` when the file
    cannot be read.
    """
    p = os.fspath(path)
    fmt = format or format_for_path(p)
    with open(p, "rb") as f:
        data = f.read()
    doc = decrypt_bytes(data, format=fmt, unwrapper=_unwrapper(identities),
                        ignore_mac=ignore_mac, name=p)
    doc.path = p
    return doc


def load(
    path: str | os.PathLike[str], *, format: str | None = None,
    identities: Identities = None,
) -> dict[str, object]:
    """Decrypt the file at ``path`` and return its first document as a plain dict."""
    return open_file(path, format=format, identities=identities).to_dict()


def encrypt(
    data: Mapping[str, object] | bytes,
    *,
    recipients: Sequence[str],
    format: str = "yaml",
    threshold: int = 0,
    key_groups: Sequence[Sequence[str]] | None = None,
    rule: tuple[str, str] | None = None,
    mac_only_encrypted: bool = False,
) -> bytes:
    """Encrypt a mapping (or plaintext file bytes) into an encrypted file's bytes.

    ``recipients`` is one key group; ``key_groups`` gives several (Shamir,
    ``threshold`` of them needed). ``rule`` is one selection rule such as
    ``("encrypted_regex", "^password$")``.
    """
    store = get_store(format)
    if isinstance(data, bytes):
        branches = store.load_plain(data)
    else:
        from .document import _from_python

        branches = [_from_python(dict(data))]  # type: ignore[list-item]
    groups = [list(g) for g in key_groups] if key_groups else [list(recipients)]
    doc = encrypt_new(branches, format=format, groups=groups, threshold=threshold, rule=rule,
                      mac_only_encrypted=mac_only_encrypted)
    return doc.encrypt(store)


def encrypt_file(
    path: str | os.PathLike[str],
    *,
    recipients: Sequence[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    in_place: bool = False,
    format: str | None = None,
) -> bytes:
    """Encrypt the plaintext file at ``path``; recipients default to ``.sops.yaml``.

    Writes to ``output`` or over ``path`` (``in_place``) atomically, and
    returns the encrypted bytes either way.
    """
    from .._fs import atomic_write
    from .config import find_config, load_config

    p = os.fspath(path)
    fmt = format or format_for_path(p)
    with open(p, "rb") as f:
        plain = f.read()
    threshold = 0
    rule = None
    groups: list[list[str]]
    if recipients:
        groups = [list(recipients)]
    else:
        creation = load_config(find_config()).rule_for(p)
        if creation is None or not creation.key_groups:
            raise ConfigError(f"no recipients for {p}: pass recipients= or add a .sops.yaml rule")
        groups, threshold, rule = creation.key_groups, creation.shamir_threshold, creation.rule
    out = encrypt(plain, recipients=groups[0], key_groups=groups, format=fmt,
                  threshold=threshold, rule=rule)
    target = output if output is not None else (p if in_place else None)
    if target is not None:
        atomic_write(target, out, mode=0o644)
    return out



