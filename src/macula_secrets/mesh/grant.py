"""What an approved node is given, made on the bootstrap and applied on the node.

The grant is one JSON document, sealed to the node's key (only the node
opens it) and handed over once:

``folder``
    Whether the node was enrolled in the bootstrap's secrets folder: its
    key added to ``.sops.yaml`` and every file's data key re-wrapped for it
    (:func:`macula_secrets.nodes.add_node`), so the node decrypts the folder
    once git brings it the new files.
``values``
    ``{app: {key: value}}`` of the apps the approval named, copied into the
    node's own store (under its own master key) when it applies the grant.
``token``
    A server token that may read and list those apps on the bootstrap
    (display name ``node-NAME``, ``[mesh] token_ttl``), with the server's
    certificate, so the node can keep reading them live (``[vault] address
    = <bootstrap>``, ``ca_cert``, ``token_file``: docs/mesh.md). ``node
    remove`` revokes it.
``master_key``
    Only when the approval asked for it (``--master-key``): the bootstrap
    store's master key, for a node that will run a copy of that store.

Values and keys exist in plaintext only inside the sealed grant, in the
bootstrap's memory while it is made and in the node's while it is applied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import FormatError
from .desk import GrantMaker, JoinRecord, Scope

if TYPE_CHECKING:
    from ..client import Secrets
    from ..sops.keygroups import Unwrapper

__all__ = ["BOOTSTRAP_DIR", "AppliedGrant", "apply_grant", "grant_maker"]

BOOTSTRAP_DIR = "bootstrap"
"""``<home>/bootstrap/``: the node's token for the bootstrap and its certificate."""


def grant_maker(secrets: Secrets, *, folder: str | None, identities: Unwrapper | None,
                config_path: str | None = None, certificate: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> GrantMaker:
    """A :data:`~.desk.GrantMaker` over the bootstrap's store, folder and token store.

    ``certificate`` is the server's certificate file (PEM), sent along with
    the token; ``folder`` (with ``identities`` that open its files) is where
    the node is enrolled, ``None`` for none.
    """

    def make(record: JoinRecord, scope: Scope) -> tuple[bytes, str | None]:
        doc: dict[str, Any] = {"version": 1, "node": record.name, "tenant": secrets.tenant,
                               "folder": False, "values": {}, "token": None,
                               "certificate": None, "master_key": None}
        if folder is not None and identities is not None and _has_rules(folder, config_path):
            from ..nodes import add_node

            add_node(folder, record.name, record.message.recipient, identities=identities,
                     config_path=config_path, progress=progress)
            doc["folder"] = True
        for app in scope.apps:
            doc["values"][app] = secrets.load_all(app)
        accessor = None
        if scope.apps:
            from ..server.policy import build_rules
            from ..server.tokens import TokenStore

            cfg = secrets.config
            home = cfg.home if cfg is not None else os.path.dirname(secrets.store.path)
            ttl = cfg.mesh.token_ttl if cfg is not None else None
            with TokenStore.from_home(home, audit=secrets.store.audit) as tokens:
                token, info = tokens.create(
                    build_rules("read", apps=list(scope.apps), tenant=secrets.tenant),
                    display_name=f"node-{record.name}", ttl=ttl, policy="read")
            doc["token"], accessor = token, info.accessor
            doc["certificate"] = _certificate(certificate, record.message.bootstrap)
        if scope.master_key:
            doc["master_key"] = _master_key(secrets)
        return json.dumps(doc).encode("utf-8"), accessor

    return make


def _has_rules(folder: str, config_path: str | None) -> bool:
    """Whether ``folder`` is a sops folder with creation rules (else there is nothing to
    enroll the node in)."""
    if config_path is not None:
        return True
    from ..sops.config import find_config

    return os.path.isdir(folder) and find_config(folder) is not None


def _certificate(path: str | None, pinned: str) -> str | None:
    """The server certificate (PEM) if it is the one the node pinned, else ``None``."""
    if path is None or not os.path.exists(path):
        return None
    from .protocol import certificate_fingerprint

    with open(path, encoding="ascii") as f:
        pem = f.read()
    return pem if certificate_fingerprint(pem.encode("ascii")) == pinned else None


def _master_key(secrets: Secrets) -> str:
    from .._masterkey import open_provider
    from ..keys.master import format_key

    cfg = secrets.config
    if cfg is None:
        raise FormatError("the store has no configuration to find its master key in")
    return format_key(open_provider(cfg, os.environ).candidates()[0])


@dataclass(frozen=True, slots=True)
class AppliedGrant:
    """What applying a grant did on the node (names and counts, never values)."""

    folder: bool
    values: dict[str, int] = field(default_factory=dict)
    """app -> keys written to the node's store."""
    token_file: str | None = None
    certificate_file: str | None = None
    master_key_file: str | None = None


def apply_grant(plaintext: bytes, secrets: Secrets, home: str) -> AppliedGrant:
    """Write a grant's values into the node's store and its token and keys into ``home``.

    Files are created 0600 in ``<home>/bootstrap/``: ``token``, ``server.pem``
    and a granted ``master.key``, which is left there for the operator to
    install with a copy of the bootstrap's store (it never replaces this
    node's own key).

    Raises:
        FormatError: the grant is not what a bootstrap makes.
    """
    from .._fs import atomic_write

    try:
        doc = json.loads(plaintext)
        values = doc["values"]
        if doc.get("version") != 1 or not isinstance(values, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise FormatError("the bootstrap's grant is not a grant this version reads") from None
    written: dict[str, int] = {}
    for app, keys in sorted(values.items()):
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise FormatError(f"the grant's values of {app} are malformed")
        for key, value in sorted(keys.items()):
            secrets.put(app, key, value)
        written[app] = len(keys)
    folder = os.path.join(home, BOOTSTRAP_DIR)
    token_file = cert_file = key_file = None
    if doc.get("token"):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        token_file = os.path.join(folder, "token")
        atomic_write(token_file, str(doc["token"]).encode("ascii") + b"\n")
    if doc.get("certificate"):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        cert_file = os.path.join(folder, "server.pem")
        atomic_write(cert_file, str(doc["certificate"]).encode("ascii"))
    if doc.get("master_key"):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        key_file = os.path.join(folder, "master.key")
        atomic_write(key_file, str(doc["master_key"]).encode("ascii"))
    return AppliedGrant(bool(doc.get("folder")), written, token_file, cert_file, key_file)
