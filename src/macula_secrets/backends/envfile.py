"""age-encrypted env files as a read-only backend: ``<folder>/<app>.env.age``.

An env file is a plain ``.env`` (``KEY=value`` lines) encrypted as one whole
age file, binary or ASCII-armored, so it can be made and read with the real
``age`` as well as with ``macula-secrets envfile``. A tenant other than
``default`` has a subfolder of its own (``<folder>/<tenant>/<app>.env.age``).

The text is decrypted in memory and parsed with python-dotenv's rules
(quotes, ``export``, multi-line quoted values, comments); plaintext never
touches the disk here. ``${VAR}`` expansion is off unless asked for, because
an expansion would make a value depend on the reading process's environment.
A bare ``KEY`` line (no ``=``) reads as the empty string.

The backend is read-only: an age file does not record its recipients, so it
cannot be re-encrypted without being told them; ``macula-secrets envfile
edit`` does that. Decrypted files are cached per process and re-read when the
file's size, modification time or inode changes.

Use the sops backend instead when values should be encrypted one by one (git
diffs that name the changed key) or when a file is shared with sops users.

.. versionadded:: 0.1
"""

from __future__ import annotations

import builtins
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from .._names import InvalidNameError, check_name
from ..errors import (
    ConfigError,
    DecryptionError,
    FormatError,
    IntegrityError,
    NoMatchingKeyError,
    PermissionDeniedError,
)
from ._folder import default_identities, tenant_folder

if TYPE_CHECKING:
    from ..keys.age import AgeIdentity, AgeRecipient
    from ..records import VersionInfo
    from . import Backend

__all__ = [
    "EXTENSION",
    "MAX_FILE_SIZE",
    "Decrypter",
    "EnvFileBackend",
    "app_files",
    "decrypt_file",
    "decrypt_values",
    "encrypt_file",
    "format_dotenv",
    "parse_dotenv",
]

EXTENSION: Final = ".env.age"
"""File name ending of app files."""

MAX_FILE_SIZE: Final = 16 * 1024 * 1024
"""Largest env file read (ciphertext bytes), as for other age files."""

_READ_ONLY_HINT: Final = "edit it with `macula-secrets envfile edit`"

# What python-dotenv reads back unchanged as an unquoted key: no whitespace,
# `=`, `#` or quote, and no byte-order mark (stripped at the start of a file).
_PLAIN_KEY: Final = re.compile(r"[^\s=#'\"\ufeff]+")
_DOUBLE_QUOTE_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}


class Decrypter(Protocol):
    """Something that decrypts a whole age file; :class:`IdentitySources` is one."""

    def decrypt(self, data: bytes, *, source: str) -> bytes:
        """The plaintext; ``NoMatchingKeyError`` when no identity fits."""
        ...


class _Identities:
    """A :class:`Decrypter` over a fixed list of identities."""

    def __init__(self, identities: Sequence[AgeIdentity]) -> None:
        self._identities = list(identities)

    def __repr__(self) -> str:
        return f"_Identities({len(self._identities)} identities)"

    def decrypt(self, data: bytes, *, source: str) -> bytes:
        from ..keys import age

        try:
            return age.decrypt(data, self._identities)
        except NoMatchingKeyError:
            tried = len(self._identities)
            plural = "identity" if tried == 1 else "identities"
            raise NoMatchingKeyError(
                f"no age identity matches {source} (tried {tried} {plural})") from None


# -- text ------------------------------------------------------------------------------


def parse_dotenv(text: str, *, source: str, interpolate: bool = False) -> dict[str, str]:
    """Parse dotenv text with python-dotenv's rules; return ``{key: value}`` in file order.

    A line python-dotenv cannot parse is an error (python-dotenv itself would
    skip it with a warning); so is a key that is not a valid key name
    (:func:`~macula_secrets._names.check_name`). Messages name ``source`` and
    the line number, never a line's text. A bare ``KEY`` reads as ``""``; a
    repeated key keeps its last value. With ``interpolate``, ``${VAR}`` is
    expanded from earlier keys and the process environment (python-dotenv's
    rules, whatever the quotes).

    Raises:
        FormatError: a line cannot be parsed, or a key name is invalid.
    """
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    # Checked before dotenv_values, which would log the bad line's number and
    # go on without it: a missing secret is better reported than guessed at.
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise FormatError(f"{source}: line {line} is not a valid dotenv line",
                              hint="write KEY=value, with quotes around values that "
                                   "have spaces, '#' or newlines")
        if binding.key is not None:
            try:
                check_name("key", binding.key)
            except InvalidNameError:
                # Not the name itself: a stray line (a URL with a password) may be a secret.
                raise FormatError(
                    f"{source}: invalid key name on line {line}",
                    hint="a key name has no '/', '\\', '..' or control characters "
                         "and is at most 255 bytes") from None
    values = dotenv_values(stream=io.StringIO(text), interpolate=interpolate)
    return {key: "" if value is None else value for key, value in values.items()}


def format_dotenv(values: Mapping[str, str]) -> str:
    """Write ``values`` as dotenv text that :func:`parse_dotenv` reads back exactly.

    One ``KEY="value"`` line per key, in order. Inside the double quotes,
    ``\\``, ``"``, newline and carriage return are written as the escapes
    python-dotenv decodes (``\\\\``, ``\\"``, ``\\n``, ``\\r``); every other
    character, Unicode included, is written as it is. Read the result without
    interpolation: a ``$`` is not escaped (python-dotenv has no escape for it).

    Raises:
        ConfigError: a key is not a valid key name, or is one python-dotenv
            would not read back as written (whitespace, ``=``, ``#``, quotes).
    """
    lines = []
    for key, value in values.items():
        check_name("key", key)
        if not _PLAIN_KEY.fullmatch(key):
            raise ConfigError(
                f"key name {key!r} cannot be written to a dotenv file",
                hint="use letters, digits, '_', '.' and '-' in env file key names")
        escaped = "".join(_DOUBLE_QUOTE_ESCAPES.get(ch, ch) for ch in value)
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)


# -- files ------------------------------------------------------------------------------


def encrypt_file(plaintext: bytes, recipients: Sequence[str | AgeRecipient], *,
                 armored: bool = False, check: bool = True,
                 source: str = "the input") -> bytes:
    """Encrypt dotenv text as an age file to ``recipients`` (binary, or armored).

    Recipients are ``age1...``, ``ssh-ed25519 ...`` or ``ssh-rsa ...`` texts
    or parsed :class:`~macula_secrets.keys.age.AgeRecipient` objects. With
    ``check`` (the default) the text must parse as dotenv first, so a file
    that the backend cannot read is never written; ``source`` names the
    text in that check's messages.

    Raises:
        ConfigError: no recipients, or one is not a supported recipient.
        FormatError: ``check`` and the text is not UTF-8 dotenv.
    """
    from ..keys import age

    parsed = [age.parse_recipient(r) if isinstance(r, str) else r for r in recipients]
    if not parsed:
        raise ConfigError("no age recipients to encrypt to",
                          hint="pass -r age1... or -R FILE, or set SOPS_AGE_RECIPIENTS")
    if check:
        parse_dotenv(_text(plaintext, source=source), source=source)
    return age.encrypt(plaintext, parsed, armored=armored)


def decrypt_file(data: bytes, decrypter: Decrypter | Sequence[AgeIdentity], *,
                 source: str) -> bytes:
    """Decrypt a whole age file (binary or armored); the plaintext stays in memory.

    ``source`` names the file in messages. Errors other than a missing key
    are given ``source`` at the front of their message.

    Raises:
        FormatError: not an age file (``LimitError``: over the limits).
        NoMatchingKeyError: no identity matches.
        IntegrityError: the file was changed or truncated after encryption.
    """
    if len(data) > MAX_FILE_SIZE:
        from ..errors import LimitError

        raise LimitError(f"{source} is {len(data)} bytes long, more than {MAX_FILE_SIZE}")
    if not data.lstrip(b" \t\r\n").startswith((b"age-encryption.org/", b"-----BEGIN AGE")):
        raise FormatError(f"{source} is not an age file",
                          hint="encrypt it with `macula-secrets envfile encrypt` or `age`")
    target = _Identities(decrypter) if isinstance(decrypter, Sequence) else decrypter
    try:
        return target.decrypt(data, source=source)
    except NoMatchingKeyError:
        raise
    except (FormatError, IntegrityError, DecryptionError) as exc:
        renamed = type(exc)(f"{source}: {exc}")
        renamed.hint = exc.hint
        raise renamed from None


def app_files(names: Iterable[str]) -> dict[str, str]:
    """``{app: file name}`` for the env files among ``names`` (the entries of one folder).

    Shared by the folder and by ``sync --git``, which lists a folder of a
    commit instead of a directory.
    """
    return {name[: -len(EXTENSION)]: name for name in sorted(names)
            if name.endswith(EXTENSION) and len(name) > len(EXTENSION)}


def decrypt_values(data: bytes, decrypter: Decrypter | Sequence[AgeIdentity], *,
                   source: str, interpolate: bool = False) -> dict[str, str]:
    """Decrypt an env file's bytes and parse them: ``{key: value}`` as the backend reads them.

    Shared by the folder backend and by ``sync --git`` (bytes read from git).

    Raises:
        the errors of :func:`decrypt_file` and :func:`parse_dotenv`.
    """
    plaintext = decrypt_file(data, decrypter, source=source)
    return parse_dotenv(_text(plaintext, source=source), source=source, interpolate=interpolate)


def _text(plaintext: bytes, *, source: str) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source} is not UTF-8 text") from None


# -- backend ----------------------------------------------------------------------------


class EnvFileBackend:
    """age-encrypted env files in one folder, for one tenant; read-only; thread-safe.

    Args:
        folder: the secrets folder holding ``<app>.env.age`` files.
        tenant: ``default`` reads ``folder`` itself, another tenant its subfolder.
        identities: age identities, or a :class:`Decrypter`; default: as sops
            finds identities (``SOPS_AGE_KEY_FILE`` and friends, in ``env``).
        env: the environment to find identities in (default ``os.environ``).
        interpolate: expand ``${VAR}`` in values (python-dotenv's rules).
    """

    name = "envfile"

    def __init__(self, folder: str | os.PathLike[str], *, tenant: str = "default",
                 identities: Decrypter | Sequence[AgeIdentity] | None = None,
                 env: Mapping[str, str] | None = None, interpolate: bool = False) -> None:
        self.folder = tenant_folder(folder, tenant)
        if identities is None:
            identities = default_identities(env)
        self._decrypter: Decrypter = (
            _Identities(identities) if isinstance(identities, Sequence) else identities)
        self._interpolate = interpolate
        self._lock = threading.RLock()
        self._files: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"EnvFileBackend({self.folder!r})"

    def path_for(self, app: str) -> str:
        """The app's file name (which may not exist)."""
        return os.path.join(self.folder, check_name("app", app) + EXTENSION)

    def has_app(self, app: str) -> bool:
        return os.path.isfile(self.path_for(app))

    def apps(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [app for app, name in app_files(names).items()
                if os.path.isfile(os.path.join(self.folder, name))]

    def _load(self, app: str) -> dict[str, str] | None:
        path = self.path_for(app)
        with self._lock:
            try:
                with open(path, "rb") as file:
                    st = os.fstat(file.fileno())
                    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
                    hit = self._files.get(path)
                    if hit is not None and hit[0] == stamp:
                        return hit[1]
                    data = file.read(MAX_FILE_SIZE + 1)
            except FileNotFoundError:
                self._files.pop(path, None)
                return None
            values = decrypt_values(data, self._decrypter, source=path,
                                    interpolate=self._interpolate)
            self._files[path] = (stamp, values)
            return values

    # -- Backend ---------------------------------------------------------------------

    def get(self, app: str, key: str, *, version: int | None = None) -> str | None:
        check_name("key", key)
        if version is not None:
            return None
        values = self._load(app)
        return None if values is None else values.get(key)

    def put(self, app: str, key: str, value: str, *, cas: int | None = None) -> int:
        raise self._read_only(app)

    def delete(self, app: str, key: str) -> None:
        raise self._read_only(app)

    def _read_only(self, app: str) -> PermissionDeniedError:
        return PermissionDeniedError(f"{self.path_for(app)} is read-only: {_READ_ONLY_HINT}",
                           hint="an age file does not record its recipients, so it cannot be "
                                          "rewritten without being told them")

    def list(self, app: str) -> builtins.list[str]:
        values = self._load(app)
        return [] if values is None else sorted(values)

    def load_all(self, app: str) -> dict[str, str]:
        values = self._load(app)
        return {} if values is None else dict(values)

    def versions(self, app: str, key: str) -> builtins.list[VersionInfo]:
        return []

    def close(self) -> None:
        with self._lock:
            self._files.clear()


_: Callable[..., Backend] = EnvFileBackend
