"""``key split`` and ``key combine``: recovery shares for the master key or an age identity.

A thin shell over :mod:`macula_secrets.keys.shares`: read the key, print or
write the shares; read shares from files, standard input or a hidden prompt,
and write the key file back. Shares go to stdout or 0600 files only; messages
name paths, split ids and share numbers, never key material.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from ..errors import KeySourceError, MaculaError
from ..keys.master import write_new
from . import exitcodes as X
from .output import CommandError, note, report

if TYPE_CHECKING:
    from .._config import Config
    from ..keys.shares import Kind, ShareSet

__all__ = ["check_split_counts", "emit_shares", "read_shares", "run"]


def run(args: argparse.Namespace) -> int:
    return _split(args) if args.run == "key split" else _combine(args)


# -- split ---------------------------------------------------------------------------


def _split(args: argparse.Namespace) -> int:
    check_split_counts(args.shares, args.threshold)
    kind: Kind
    if args.identity is not None:
        from ..keys.shares import identity_from_secret, identity_to_secret

        kind = "age-identity"
        secret = identity_to_secret(_read_text(args.identity), source=args.identity)
        what = f"the age identity {identity_from_secret(secret).recipient}"
    else:
        cfg = _config(args)
        kind = "master-key"
        secret = _current_master_key(cfg)
        what = f"the master key of {cfg.home} on {os.uname().nodename}"
    emit_shares(secret, kind, shares=args.shares, threshold=args.threshold, what=what,
                out_dir=args.out_dir)
    return X.OK


def check_split_counts(shares: int, threshold: int) -> None:
    """Refuse share counts that ``split_secret`` cannot make or that would be unsafe."""
    if not 2 <= shares <= 255:
        raise CommandError(f"--shares must be between 2 and 255, not {shares}")
    if threshold < 2:
        raise CommandError("--threshold must be at least 2",
                           hint="with 1, every share would be a whole copy of the key")
    if threshold > shares:
        raise CommandError(f"--threshold {threshold} is more than --shares {shares}",
                           hint="the threshold is how many of the shares restore the key")


def emit_shares(secret: bytes, kind: Kind, *, shares: int, threshold: int, what: str,
                out_dir: str | None) -> list[str]:
    """Split ``secret`` and print the shares on stdout, or write one 0600 file each into
    ``out_dir`` (their paths are printed); returns the files written (``init`` uses it too)."""
    from ..keys.shares import parse_share, split_secret

    texts = split_secret(secret, kind, shares, threshold)
    split_id = parse_share(texts[0]).split_id
    restore = f"any {threshold} of the {shares} shares restore it; fewer reveal nothing"
    if out_dir is None:
        out = [f"# Recovery shares for {what}.",
               f"# Split {split_id}: {restore}.",
               "# Give each custodian one share (printed, or in a private file), kept apart "
               "from the others.",
               "# To restore: macula-secrets key combine  (asks for the shares one by one)",
               _rotation_note(kind)]
        for number, text in enumerate(texts, start=1):
            out += ["", f"# share {number} of {shares} (split {split_id})", text]
        sys.stdout.write("\n".join(out) + "\n")
        return []
    paths = _write_share_files(out_dir, texts, split_id=split_id, what=what,
                               restore=restore, kind=kind)
    for path in paths:
        sys.stdout.write(path + "\n")
    note(f"wrote {shares} shares of split {split_id} ({restore})")
    note("give each custodian one file, then delete the copies here")
    return paths


def _rotation_note(kind: Kind) -> str:
    if kind == "master-key":
        return ("# After `macula-secrets key rotate-master` these shares no longer open the "
                "store: split the new key.")
    return "# If the identity is replaced, split the new one: these shares restore only this one."


def _current_master_key(cfg: Config) -> bytes:
    """The master key that opens the store, from whichever provider holds it (a key
    file, a sealed file, the environment), so a sealed key can be split too."""
    from .._masterkey import open_provider
    from ..localstore import barrier
    from ..localstore.store import LocalStore

    provider = open_provider(cfg, os.environ)
    if not provider.exists():
        raise CommandError(f"no master key: {provider.description} does not exist",
                           hint="split the key of an existing store (--home DIR), or "
                                "--identity FILE for an age identity")
    if not os.path.exists(cfg.store_path):
        return provider.candidates()[0]
    # Open the store first: the shares must be of the key it really uses (it
    # also finishes a rotation that was interrupted).
    store = LocalStore(cfg.store_path, provider)
    try:
        wanted = store.master_key_id()
    finally:
        store.close()
    for key in provider.candidates():
        if barrier.key_id(key).hex() == wanted:
            return key
    raise KeySourceError(f"the master key in {provider.description} changed while it was "
                         "read", hint="run the command again")


def _write_share_files(folder: str, texts: list[str], *, split_id: str, what: str,
                       restore: str, kind: Kind) -> list[str]:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    total = len(texts)
    paths = [os.path.join(folder, f"share-{split_id}-{n}-of-{total}.txt")
             for n in range(1, total + 1)]
    for path in paths:
        if os.path.lexists(path):
            raise CommandError(f"{path} already exists", hint="choose another --out-dir")
    for number, (path, text) in enumerate(zip(paths, texts, strict=True), start=1):
        body = (f"# macula-secrets recovery share {number} of {total} (split {split_id})\n"
                f"# It holds part of {what}: {restore}.\n"
                "# Keep it private and apart from the other shares. To restore:\n"
                "#   macula-secrets key combine FILE...   (or type the shares when asked)\n"
                f"{_rotation_note(kind)}\n"
                f"{text}\n")
        write_new(path, body)  # 0600 from the start, whole or not at all, never over a file
    return paths


# -- combine -------------------------------------------------------------------------


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _read_hidden(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


def read_shares(files: list[str]) -> tuple[Kind, bytes]:
    """Combine shares from ``files``, else a hidden prompt on a TTY, else stdin lines."""
    from ..keys.shares import ShareSet

    collected = ShareSet()
    if files:
        for path in files:
            collected.add(_share_in_file(path), source=path)
    elif _stdin_is_tty():
        _prompt(collected)
    else:
        for number, line in enumerate(sys.stdin, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                collected.add(line, source=f"the share on line {number} of standard input")
    return collected.combine()


def _combine(args: argparse.Namespace) -> int:
    kind, secret = read_shares(args.files)
    if kind == "master-key":
        return _restore_master(args, secret)
    return _restore_identity(args, secret)


def _prompt(collected: ShareSet) -> None:
    """Ask for shares until there are enough; a bad one is named and asked for again."""
    note("type or paste the recovery shares one at a time (the input is not shown); "
         "Ctrl-D stops")
    while not collected.is_complete():
        number = collected.count + 1
        needed = f" of {collected.needed}" if collected.needed else ""
        try:
            text = _read_hidden(f"share {number}{needed}: ")
        except EOFError:
            sys.stderr.write("\n")
            break
        if not text.strip():
            continue
        try:
            share = collected.add(text, source=f"share {number}")
        except MaculaError as exc:
            report(exc)
            continue
        first = (f"; {share.threshold} of the {share.total} shares are needed"
                 if number == 1 else "")
        note(f"share {number}: share {share.index} of split {share.split_id} accepted{first}")


def _share_in_file(path: str) -> str:
    """The share in a file: its lines without comments (a share may be wrapped)."""
    text = _read_text(path)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines)


def _read_text(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read(64 * 1024)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a text file") from None


def _restore_master(args: argparse.Namespace, secret: bytes) -> int:
    import hmac

    from ..keys.master import MasterKeyFile, parse_key
    from ..localstore import barrier

    if len(secret) != 32:
        raise KeySourceError("the shares do not restore a master key (wrong size)")
    cfg = _config(args)
    path = args.output or cfg.master_key_path
    key_id = barrier.key_id(secret).hex()[:16]
    if os.path.lexists(path):
        try:
            existing = parse_key(_read_text(path), source=path)
        except (KeySourceError, CommandError):
            raise CommandError(f"{path} exists and is not a master key file; it is not "
                               "replaced", hint="move it away, or give --output FILE") from None
        if hmac.compare_digest(existing, secret):
            note(f"{path} already holds this master key (key id {key_id}); nothing to do")
            return X.OK
        raise CommandError(f"{path} holds a different master key; it is not replaced",
                           hint="move it away first (keep it: it may be the only key of some "
                                "store), or give --output FILE")
    MasterKeyFile(path).create(secret)
    if args.output is None and os.path.exists(cfg.store_path):
        _check_opens_store(cfg, path)
        note(f"master key restored to {path} (key id {key_id}); the store opens with it")
    else:
        note(f"master key restored to {path} (key id {key_id})")
    return X.OK


def _check_opens_store(cfg: Config, path: str) -> None:
    """Open the store with the restored key; remove the key file again if it does not fit."""
    from ..keys.master import MasterKeyFile
    from ..localstore.store import LocalStore

    try:
        LocalStore(cfg.store_path, MasterKeyFile(path)).close()
    except KeySourceError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise KeySourceError(
            str(exc), hint="the key file was not kept; these shares may be of a key from "
                           "before a `key rotate-master`: use shares of the current key") from None


def _restore_identity(args: argparse.Namespace, secret: bytes) -> int:
    from ..keys.age import parse_identities, write_identity_file
    from ..keys.shares import identity_from_secret

    identity = identity_from_secret(secret)
    path = args.output or _default_identity_file()
    if os.path.lexists(path):
        try:
            present = {i.recipient for i in parse_identities(_read_text(path), source=path)}
        except (KeySourceError, CommandError):
            present = set()
        if identity.recipient in present:
            note(f"{path} already holds the age identity {identity.recipient}; nothing to do")
            return X.OK
        raise CommandError(f"{path} exists; the age identity is not added to it",
                           hint="give --output FILE for a new file")
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    write_identity_file(path, identity)
    note(f"age identity {identity.recipient} restored to {path}")
    return X.OK


def _default_identity_file() -> str:
    """Where sops looks first: ``$SOPS_AGE_KEY_FILE``, else ``<config>/sops/age/keys.txt``."""
    from .. import _env

    named = os.environ.get(_env.SOPS_AGE_KEY_FILE)
    if named:
        return named
    config = os.environ.get(_env.XDG_CONFIG_HOME, "")
    if not os.path.isabs(config):
        config = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "sops", "age", "keys.txt")


def _config(args: argparse.Namespace) -> Config:
    from .._config import load_config

    return load_config(home=args.home)
