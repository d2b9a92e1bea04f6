"""SOPS files as a backend: one encrypted file per app in the GitOps secrets folder.

The file for app ``console`` is the first that exists of
``<secrets_dir>/console.enc.yaml``, ``.enc.yml``, ``.enc.json``, ``.enc.env``
and ``.enc.ini``; a tenant other than ``default`` has a subfolder of its own
(``<secrets_dir>/<tenant>/console.enc.yaml``).

Keys are the file's top-level keys; nested mappings are flattened with dots
(``database.password``), as INI sections are (``section.key``). Values are
text: numbers as written, booleans as ``true``/``false``, null as the empty
string, lists as JSON. A ``put`` changes one value in place and leaves every
other ciphertext as it was (git shows a one-line diff plus the MAC).

Files keep no versions of their own (git does): ``versions`` is empty and
``put`` returns 0. Decrypted files are cached per process and re-read when
the file's size, modification time or inode changes.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

from .._names import check_name
from ..errors import ConfigError, NotFoundError
from ._folder import default_identities, tenant_folder

if TYPE_CHECKING:
    from ..records import VersionInfo
    from ..sops.document import SopsFile
    from ..sops.keygroups import Unwrapper
    from . import Backend

__all__ = ["EXTENSIONS", "SopsBackend", "app_files", "decrypt_app_file", "flatten"]

EXTENSIONS: Final = (".enc.yaml", ".enc.yml", ".enc.json", ".enc.env", ".enc.ini")
"""File name endings of app files, in the order they are looked for."""


def text_of(value: object, *, whole_floats_as_ints: bool = False) -> str:
    """A file value as the text a secret holds.

    ``whole_floats_as_ints`` is for JSON, whose numbers carry no int/float
    distinction (they load as floats, as in Go): ``5432`` must read as
    ``5432``, the way it is written, not ``5432.0``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and whole_floats_as_ints and value.is_integer() \
            and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def flatten(data: Mapping[str, object], prefix: str = "", *,
            whole_floats_as_ints: bool = False) -> dict[str, str]:
    """Nested mappings to ``{"a.b": "text"}``; the order of the file is kept."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name, whole_floats_as_ints=whole_floats_as_ints))
        else:
            out[name] = text_of(value, whole_floats_as_ints=whole_floats_as_ints)
    return out


def app_files(names: Iterable[str]) -> dict[str, str]:
    """``{app: file name}`` for the app files among ``names`` (the entries of one folder).

    An app with files of several endings uses the first in :data:`EXTENSIONS`
    order, as :meth:`SopsBackend.path_for` does. Shared by the folder and by
    ``sync --git``, which lists a folder of a commit instead of a directory.
    """
    found: dict[str, tuple[int, str]] = {}
    for name in names:
        for rank, ext in enumerate(EXTENSIONS):
            if name.endswith(ext) and len(name) > len(ext):
                app = name[: -len(ext)]
                if app not in found or rank < found[app][0]:
                    found[app] = (rank, name)
                break
    return {app: name for app, (_rank, name) in sorted(found.items())}


def decrypt_app_file(data: bytes, *, name: str, identities: Unwrapper
                     ) -> tuple[SopsFile, dict[str, str]]:
    """Decrypt an app file's bytes: the document, and its values as the store keeps them.

    ``name`` picks the format by its ending and names the file in errors.
    Values are flattened (:func:`flatten`) and every key must be a valid key
    name. Shared by the folder and by ``sync --git`` (bytes read from git).

    Raises:
        FormatError, NoMatchingKeyError, IntegrityError: as :func:`macula_secrets.sops.decrypt`.
        InvalidNameError: a key is not a valid key name.
    """
    from ..sops.document import decrypt_bytes
    from ..sops.stores import format_for_path

    doc = decrypt_bytes(data, format=format_for_path(name), unwrapper=identities, name=name)
    values = flatten(doc.to_dict(), whole_floats_as_ints=doc.format == "json")
    for key in values:
        check_name("key", key)
    return doc, values


class SopsBackend:
    """App files in one folder, for one tenant; thread-safe.

    Args:
        folder: the GitOps secrets folder.
        tenant: ``default`` reads ``folder`` itself, another tenant its subfolder.
        identities: how data keys are unwrapped; default: as sops finds identities
            (``SOPS_AGE_KEY_FILE`` and friends).
    """

    name = "sops"

    def __init__(self, folder: str | os.PathLike[str], *, tenant: str = "default",
                 identities: Unwrapper | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.folder = tenant_folder(folder, tenant)
        if identities is None:
            identities = default_identities(env)
        self._identities = identities
        self._lock = threading.RLock()
        self._files: dict[str, tuple[tuple[int, int, int], SopsFile, dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"SopsBackend({self.folder!r})"

    # -- files -------------------------------------------------------------------

    def path_for(self, app: str) -> str | None:
        """The app's file, or ``None`` when it has none."""
        check_name("app", app)
        for ext in EXTENSIONS:
            path = os.path.join(self.folder, app + ext)
            if os.path.isfile(path):
                return path
        return None

    def has_app(self, app: str) -> bool:
        return self.path_for(app) is not None

    def apps(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return builtins.list(app_files(names))

    def _load(self, app: str) -> tuple[str, SopsFile, dict[str, str]] | None:
        path = self.path_for(app)
        if path is None:
            return None
        with self._lock:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            hit = self._files.get(path)
            if hit is not None and hit[0] == stamp:
                return path, hit[1], hit[2]
            with open(path, "rb") as file:
                data = file.read()
            doc, values = decrypt_app_file(data, name=path, identities=self._identities)
            doc.path = path
            self._files[path] = (stamp, doc, values)
            return path, doc, values

    def read_app(self, app: str) -> dict[str, str]:
        """Every value of the app's file (decrypted, flattened); ``NotFoundError`` without one."""
        loaded = self._load(app)
        if loaded is None:
            raise NotFoundError(f"no secrets file for app {app} in {self.folder}")
        return dict(loaded[2])

    # -- Backend -------------------------------------------------------------------

    def get(self, app: str, key: str, *, version: int | None = None) -> str | None:
        check_name("key", key)
        if version is not None:
            return None
        loaded = self._load(app)
        return None if loaded is None else loaded[2].get(key)

    def put(self, app: str, key: str, value: str, *, cas: int | None = None) -> int:
        check_name("key", key)

        def change(doc: SopsFile) -> None:
            if doc.format == "ini":
                # INI is sections of flat keys: section.key, split at the first dot.
                if "." not in key:
                    raise ConfigError(
                        f"{app} is an INI file: its keys are section.key, not {key!r}")
                doc.set(list(key.split(".", 1)), value)
                return
            doc.set(_tree_path(doc.to_dict(), key), value)

        self._change(app, change)
        return 0

    def delete(self, app: str, key: str) -> None:
        check_name("key", key)

        def change(doc: SopsFile) -> None:
            data = doc.to_dict()
            if key not in flatten(data):
                raise NotFoundError(f"{key} is not in the secrets file of {app}")
            doc.unset(_tree_path(data, key))

        self._change(app, change)

    def _change(self, app: str, change: Callable[[SopsFile], None]) -> None:
        with self._lock:
            loaded = self._load(app)
            if loaded is None:
                raise NotFoundError(f"no secrets file for app {app} in {self.folder}")
            path, doc, _values = loaded
            change(doc)
            doc.save(path)
            self._files.pop(path, None)

    def list(self, app: str) -> builtins.list[str]:
        loaded = self._load(app)
        return [] if loaded is None else sorted(loaded[2])

    def load_all(self, app: str) -> dict[str, str]:
        loaded = self._load(app)
        return {} if loaded is None else dict(loaded[2])

    def versions(self, app: str, key: str) -> builtins.list[VersionInfo]:
        return []

    def close(self) -> None:
        with self._lock:
            self._files.clear()


def _tree_path(data: Mapping[str, object], key: str) -> list[str | int]:
    """Where a flattened key lives in the file: nested when the dotted path exists.

    ``database.password`` is ``["database"]["password"]`` when ``database``
    is a mapping in the file, else a top-level key with a dot in its name.
    """
    if key in data or "." not in key:
        return [key]
    parts = key.split(".")
    node: object = data
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            return [key]
        if part not in node:
            # Create the rest under the deepest existing mapping (depth > 0),
            # else keep the dotted name at the top.
            return list(parts) if depth > 0 else [key]
        node = node[part]
    return list(parts)


_: Callable[..., Backend] = SopsBackend
