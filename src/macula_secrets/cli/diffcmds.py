"""``diff`` and ``merge-driver``: reading and merging sops files the way git needs.

Thin shells over :mod:`macula_secrets.sops.diff` and
:mod:`macula_secrets.sops.merge`: read the files (or ``REV:path`` from
git), find identities as sops does, print or write the result.

Exit statuses, chosen so a script and git can tell the cases apart:

* ``diff``: 0 the decrypted contents are equal, 1 they differ, **2** trouble
  (a file cannot be read or decrypted, no such revision), as diff(1) and
  cmp(1) do. The usual "handled error = 1" would be read as "differ".
* ``merge-driver``: 0 merged (OURS rewritten), 1 conflict (OURS untouched,
  conflicting paths on stderr), 2 trouble (OURS untouched). git only
  distinguishes zero from non-zero: anything but 0 leaves the file
  conflicted for a person to resolve.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from ..errors import ConfigError, FormatError
from ..sops.stores import format_for_path
from . import exitcodes as X
from .output import note, report

__all__ = ["TROUBLE", "run"]

#: Exit status for "could not compare / could not merge" (diff(1)'s 2).
TROUBLE: Final = 2
DIFFERENT: Final = 1
CONFLICT: Final = 1


def run(args: argparse.Namespace) -> int:
    """Run ``diff`` or ``merge-driver``; errors are reported here (exit 2), not by main()."""
    try:
        if args.run == "diff":
            return cmd_diff(args)
        return cmd_merge_driver(args)
    except BrokenPipeError:
        raise
    except Exception as exc:
        if os.environ.get("MACULA_DEBUG"):
            raise
        report(exc)
        return TROUBLE


def _identities() -> object:
    """One identity source for all sides, so key files are read (and passphrases asked) once."""
    from ..keys._discovery import IdentitySources

    return IdentitySources.from_environment(os.environ, os.path.expanduser("~"))


# -- diff ------------------------------------------------------------------------------------


def _read_side(spec: str) -> tuple[bytes, str, str]:
    """``(content, name for messages, path that decides the format)`` of a diff operand.

    An existing file wins; otherwise ``REV:path`` is read from the git
    repository of the current directory (``path`` from the top of the
    repository, or ``./path`` relative to here, as ``git show`` reads it).
    """
    from .. import _git
    from .filecmds import _read

    if os.path.exists(spec) or ":" not in spec:
        return _read(spec, what=spec), spec, spec
    rev, _, path = spec.partition(":")
    if rev.startswith("-") or not path:
        raise ConfigError(f"{spec} is neither a file nor REV:path",
                          hint="name an existing file, or a revision and a path, "
                               "such as HEAD:secrets/app.enc.yaml")
    return _git.show(os.getcwd(), rev, path), spec, path


def cmd_diff(args: argparse.Namespace) -> int:
    from ..sops.diff import compare
    from ..sops.document import decrypt_bytes
    from .filecmds import _store

    unwrapper = _identities()
    docs = []
    for spec in (args.a, args.b):
        data, name, path = _read_side(spec)
        fmt = format_for_path(path)
        docs.append(decrypt_bytes(data, format=fmt, unwrapper=unwrapper,  # type: ignore[arg-type]
                                  name=name, store=_store(fmt, args),  # type: ignore[arg-type]
                                  editable=False))
    changes = compare(docs[0].branches, docs[1].branches)
    lines = []
    for change in changes:
        where = _where(change.path, change.document)
        if change.kind == "added":
            line = f"+ {where}"
            if args.show_values:
                line += f": {render_value(change.new)}"
        elif change.kind == "removed":
            line = f"- {where}"
            if args.show_values:
                line += f": {render_value(change.old)}"
        elif change.kind == "changed":
            line = f"~ {where}"
            if args.show_values:
                line += f": {render_value(change.old)} -> {render_value(change.new)}"
        elif change.kind == "comments":
            line = f"~ {where} (comments)"
        else:
            line = f"~ {where} (key order)"
        lines.append(line + "\n")
    out = sys.stdout
    out.write("".join(lines))
    out.flush()
    return DIFFERENT if changes else X.OK


def _where(path: tuple[str | int, ...], document: int) -> str:
    from ..sops.diff import format_path

    text = format_path(path) or "(top level)"
    return f"(document {document + 1}) {text}" if document else text


def render_value(value: object) -> str:
    """A value on one line, JSON-like, for ``--show-values`` (the caller asked to see it).

    Comments inside mappings and lists are left out; ``changed`` lines are
    about values.
    """
    import json

    from ..sops.tree import Branch, Comment, Timestamp

    def plain(v: object) -> object:
        if isinstance(v, Branch):
            return {str(k): plain(x) for k, x in v if k.__class__ is not Comment}
        if isinstance(v, list):
            return [plain(x) for x in v if x.__class__ is not Comment]
        if isinstance(v, Timestamp):
            return v.text
        if isinstance(v, bytes):
            return f"<{len(v)} bytes>"
        return v

    return json.dumps(plain(value), ensure_ascii=False, default=str)


# -- merge-driver -----------------------------------------------------------------------------


def _sniff_format(data: bytes) -> str:
    """The format of an encrypted file from its content (git's temp files have no extension)."""
    head = data.lstrip()
    if head.startswith(b"{"):
        return "json"
    if b"\nsops_version=" in b"\n" + data or b"\nsops_mac=" in b"\n" + data:
        return "dotenv"
    if b"\n[sops]" in b"\n" + data:
        return "ini"
    return "yaml"


def cmd_merge_driver(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..sops.merge import merge_bytes
    from .filecmds import _read, _store

    base = _read(args.base, what="the base version")
    ours = _read(args.ours, what="our version")
    theirs = _read(args.theirs, what="their version")
    if not ours or not theirs:
        raise FormatError("one side of the merge is empty; resolve this one by hand")
    label = args.path or args.ours
    fmt = format_for_path(args.path) if args.path else _sniff_format(ours)
    result = merge_bytes(
        base or None, ours, theirs,
        format=fmt,
        unwrapper=_identities(),  # type: ignore[arg-type]
        store=_store(fmt, args),  # type: ignore[arg-type]
        names=(f"{label} (base)", f"{label} (ours)", f"{label} (theirs)"),
    )
    if result.data is None:
        note(f"merge conflict in {label}: {len(result.conflicts)} "
             f"place{'s' if len(result.conflicts) != 1 else ''} changed differently on both sides")
        for conflict in result.conflicts:
            sys.stderr.write(f"macula:   {conflict.describe()}\n")
        sys.stderr.flush()
        return CONFLICT
    atomic_write(args.ours, result.data, mode=0o644)
    return X.OK
