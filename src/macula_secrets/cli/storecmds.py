"""The runtime-store commands: get, put, delete, undelete, destroy, list, history,
rollback, sync, run, key rotate-master.

Thin shells over :class:`macula_secrets.Secrets`: parse, call, print. Values
go to stdout only where the command's job is to print one (``get``); every
message is about names and versions, never values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from ..client import Secrets
    from ..keys._discovery import IdentitySources
    from ..records import SyncReport, VersionInfo

__all__ = ["run"]


def _open(args: argparse.Namespace) -> Secrets:
    from ..client import Secrets

    return Secrets.open(home=args.home, tenant=args.tenant)


def run(args: argparse.Namespace) -> int:
    handler = _HANDLERS[args.run]
    return handler(args)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (a person reads it; a script gets the plain form)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def use_colour(stream: object) -> bool:
    """Colour only for a person at a terminal, and never with ``NO_COLOR`` set (no-color.org)."""
    return not os.environ.get("NO_COLOR") and is_terminal(stream)


def format_table(rows: list[tuple[str, ...]], *, bold_header: bool = False) -> str:
    """Rows as aligned columns, the first row the header; trailing blanks trimmed.

    Plain text rather than a rich table: no import at start-up, and the same
    bytes whether or not a terminal reads them (only ``bold_header`` adds
    an escape code, for a terminal).
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    if bold_header and lines:
        lines[0] = f"\x1b[1m{lines[0]}\x1b[0m"
    return "".join(line + "\n" for line in lines)


def _versions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        out = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--versions takes numbers separated by commas, not {text!r}",
                           hint="e.g. --versions 1,2") from None
    if not out or any(v < 1 for v in out):
        raise CommandError("--versions needs at least one version number of 1 or more")
    return out


# -- reading -------------------------------------------------------------------------


def _get(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        value = secrets.require(args.app, args.key, version=args.version)
        version = args.version or secrets.store.current_version(secrets.tenant, args.app,
                                                                args.key)
        # Fail closed: a read the audit log cannot record is not printed.
        secrets.store.audit_read(secrets.tenant, args.app, args.key, version=version)
        if args.json:
            _print_json({"tenant": secrets.tenant, "app": args.app, "key": args.key,
                         "version": version, "value": value})
        else:
            sys.stdout.write(value if args.no_newline else value + "\n")
    return X.OK


def _list(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        if args.app is None:
            names = secrets.store.list_apps(secrets.tenant)
            if secrets.vault is not None:
                names = _vault_apps(secrets, names)
            elif secrets.source is not None:
                names = sorted(set(names) | set(secrets.source.apps()))
        elif args.all:
            names = sorted(set(secrets.store.list_keys(secrets.tenant, args.app,
                                                       include_deleted=True))
                           | set(secrets.list(args.app)))
        else:
            names = secrets.list(args.app)
        # A person at a terminal gets a table; a pipe gets one name per line (scripts).
        table = (_list_table(secrets, args.app, names)
                 if not args.json and names and is_terminal(sys.stdout) else None)
    if args.json:
        _print_json(names)
    elif table is not None:
        sys.stdout.write(table)
    else:
        for name in names:
            sys.stdout.write(name + "\n")
    return X.OK


def _list_table(secrets: Secrets, app: str | None, names: list[str]) -> str:
    """``list`` for a terminal: apps with their key counts, or keys with version,
    last change and origin (``-`` for a key only the source has so far)."""
    store, tenant = secrets.store, secrets.tenant
    colour = use_colour(sys.stdout)
    if app is None:
        stored = set(store.list_apps(tenant))
        return format_table([("APP", "LIVE KEYS"),
                             *((a, str(len(store.list_keys(tenant, a))) if a in stored else "-")
                               for a in names)], bold_header=colour)
    origins = store.origins(tenant, app)
    rows: list[tuple[str, ...]] = [("KEY", "VERSION", "UPDATED (UTC)", "ORIGIN")]
    for key in names:
        version = store.current_version(tenant, app, key)
        updated = store.updated_at(tenant, app, key)
        rows.append((key, str(version) if version else "-",
                     time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(updated))
                     if updated is not None else "-",
                     origins.get((app, key), "-")))
    return format_table(rows, bold_header=colour)


def _vault_apps(secrets: Secrets, cached: list[str]) -> list[str]:
    """Vault's apps; while it is unreachable, the apps in the store (said on stderr)."""
    from ..errors import UnavailableError

    assert secrets.vault is not None  # noqa: S101
    try:
        return secrets.vault.backend.apps()
    except UnavailableError:
        note(f"vault at {secrets.vault.address} is unreachable: listing the apps in the "
             "store's cache")
        return cached


def _history(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        records = secrets.history(args.app, args.key)
    if args.json:
        _print_json([r.to_json() for r in records])
        return X.OK
    sys.stdout.write(_history_table(records, bold_header=use_colour(sys.stdout)))
    return X.OK


def _history_table(records: list[VersionInfo], *, bold_header: bool = False) -> str:
    # The COMMIT column (short ids; --json has them in full) appears once a
    # version came from `sync --git`, so stores that never do keep their table.
    commits = any(r.commit for r in records)
    rows = [("VERSION", "CREATED (UTC)", "STATE", "DELETED (UTC)",
             *(("COMMIT",) if commits else ()), "")]
    for r in records:
        rows.append((str(r.version), r.created.strftime("%Y-%m-%d %H:%M:%S"), r.state,
                     r.deleted.strftime("%Y-%m-%d %H:%M:%S") if r.deleted else "-",
                     *(((r.commit or "-")[:12],) if commits else ()),
                     "current" if r.current else ""))
    return format_table(rows, bold_header=bold_header)


# -- writing -------------------------------------------------------------------------


def _read_value(args: argparse.Namespace) -> str:
    if args.value is not None:
        return str(args.value)
    if sys.stdin.isatty():
        note("reading the value from standard input (end with Ctrl-D)")
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("the value on standard input is not UTF-8 text") from None
    # `echo value | put` adds one newline nobody meant; a multi-line value
    # (a certificate) keeps its final newline.
    if text.endswith("\n") and "\n" not in text[:-1]:
        text = text[:-1]
    return text


def _put(args: argparse.Namespace) -> int:
    value = _read_value(args)
    with _open(args) as secrets:
        version = secrets.put(args.app, args.key, value, cas=args.cas)
    if args.json:
        _print_json({"app": args.app, "key": args.key, "version": version})
    else:
        sys.stdout.write(f"{args.app}/{args.key}: version {version}\n")
    return X.OK


def _delete(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        secrets.delete(args.app, args.key, versions=_versions(args.versions))
    note(f"{args.app}/{args.key}: deleted (undelete brings it back)")
    return X.OK


def _undelete(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        secrets.undelete(args.app, args.key, versions=_versions(args.versions))
    note(f"{args.app}/{args.key}: undeleted")
    return X.OK


def _destroy(args: argparse.Namespace) -> int:
    versions = _versions(args.versions)
    assert versions is not None  # noqa: S101 - --versions is required
    with _open(args) as secrets:
        secrets.destroy(args.app, args.key, versions)
    note(f"{args.app}/{args.key}: destroyed version(s) {', '.join(map(str, versions))}")
    return X.OK


def _rollback(args: argparse.Namespace) -> int:
    with _open(args) as secrets:
        version = secrets.rollback(args.app, args.key, args.version)
    sys.stdout.write(f"{args.app}/{args.key}: version {version} (the value of version "
                     f"{args.version})\n")
    return X.OK


# -- sync ----------------------------------------------------------------------------


def _sync(args: argparse.Namespace) -> int:
    from .progress import progress_bar

    if args.git is not None:
        return _sync_git(args)
    if args.rev is not None or args.git_path is not None or args.force:
        sys.stderr.write("macula: error: --rev, --path and --force go with --git REPO\n"
                         "macula: hint: e.g. sync --git /srv/gitops --rev origin/main\n")
        return X.USAGE
    with _open(args) as secrets, progress_bar("sync") as update:
        report = secrets.sync(progress=update)
    _print_sync(args, report)
    if not args.json and not report.apps:
        note(f"no apps in vault at {secrets.vault.address}" if secrets.vault is not None
             else "no app files in the secrets folder")
    elif not args.json and not report.changed_anything and not report.errors:
        note("nothing changed")
    _print_sync_errors(report)
    if report.errors:
        what = "apps" if secrets.vault is not None else "app files"
        note(f"{len(report.errors)} of {len(report.apps)} {what} failed; the others synced")
        return X.ERROR
    return X.OK


def _sync_git(args: argparse.Namespace) -> int:
    """``sync --git REPO [--rev REV] [--path DIR] [--force]``: see :func:`..sync.sync_git`."""
    from ..sync import DEFAULT_GIT_PATH, sync_git
    from .progress import progress_bar

    with _open(args) as secrets:
        if secrets.vault is not None:
            raise CommandError(
                "sync --git fills the store from sops files, but this node's source is vault",
                hint="sync without --git reads vault; or set source = \"sops\" in the "
                     "configuration")
        before = secrets.store.synced_commit(secrets.tenant)
        with progress_bar("sync") as update:
            report = sync_git(secrets.store, args.git, args.rev or "HEAD",
                              path=args.git_path or DEFAULT_GIT_PATH, tenant=secrets.tenant,
                              force=args.force, identities=_identities(secrets),
                              progress=update)
    commit = (report.commit or "")[:12]
    _print_sync(args, report)
    _print_sync_errors(report)
    if report.errors:
        note(f"nothing was synced: {len(report.errors)} app file(s) at commit {commit} failed")
        return X.ERROR
    if args.json:
        return X.OK
    if not report.apps:
        note(f"no app files at commit {commit}")
    if not report.changed_anything:
        note(f"nothing changed: the store is at commit {commit}")
    elif before is not None and before.commit != report.commit:
        note(f"synced commit {commit} (the one before: {before.commit[:12]})")
    else:
        note(f"synced commit {commit}")
    return X.OK


def _identities(secrets: Secrets) -> IdentitySources:
    """The identities a folder sync uses: as sops finds them, and ``age_key_file``."""
    from ..backends._folder import default_identities

    env = dict(os.environ)
    if secrets.config is not None and secrets.config.age_key_file:
        env["SOPS_AGE_KEY_FILE"] = secrets.config.age_key_file
    return default_identities(env)


def _print_sync(args: argparse.Namespace, report: SyncReport) -> None:
    """What changed, per app: JSON (``--json``) or one line per app that synced."""
    if args.json:
        _print_json([{**a.to_json(), **({"commit": report.commit} if report.commit else {})}
                     for a in report.apps])
        return
    for a in report.apps:
        if a.error is not None:
            continue
        if a.changed_anything:
            sys.stdout.write(f"{a.app}: {a.counts}\n")
        else:
            sys.stdout.write(f"{a.app}: up to date ({a.unchanged} keys)\n")


def _print_sync_errors(report: SyncReport) -> None:
    for failed in report.errors:
        sys.stderr.write(f"macula: error: {failed.source}: {failed.error}\n")


# -- run -----------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from . import runcmd

    return runcmd.run(args)


# -- keys ----------------------------------------------------------------------------


def _rotate_master(args: argparse.Namespace) -> int:
    from .progress import progress_bar

    with _open(args) as secrets:
        before = secrets.store.master_key_id()[:16]
        with progress_bar("re-encrypting", enabled=args.reencrypt) as update:
            secrets.rotate_master_key(reencrypt=args.reencrypt, progress=update)
        after = secrets.store.master_key_id()[:16]
    note(f"master key rotated: key id {before} -> {after}"
         + (" (data keys replaced, every value re-encrypted)" if args.reencrypt else ""))
    note("back up the new key file now: the old one no longer opens the store")
    return X.OK


# -- audit ---------------------------------------------------------------------------


def _audit_path(args: argparse.Namespace) -> str:
    from .._config import load_config

    cfg = load_config(home=args.home)
    if getattr(args, "server", False):
        from ..server.run import AUDIT_FILE

        return os.path.join(cfg.home, AUDIT_FILE)
    return cfg.audit_path


def _audit_tail(args: argparse.Namespace) -> int:
    from ..audit import describe_entry, tail

    entries = tail(_audit_path(args), args.lines)
    if args.json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return X.OK
    for e in entries:
        where, version = describe_entry(e, default_tenant=False)
        actor = e.get("actor", {})
        who = f"{actor.get('program', '?')}[{actor.get('pid', '?')}]" \
            if isinstance(actor, dict) else "?"
        extra = f" via {e['via']}" if e.get("via") else ""
        sys.stdout.write(f"{str(e.get('time', ''))[:19]}  {e.get('op', '?'):<13} "
                         f"{where:<32} {version:<7} {e.get('result', '?'):<4} "
                         f"{who}{extra}\n")
    return X.OK


def _audit_verify(args: argparse.Namespace) -> int:
    from ..audit import verify

    path = _audit_path(args)
    result = verify(path)
    if result.ok:
        sys.stdout.write(f"{path}: {result.lines} entries, hash chain intact\n")
        return X.OK
    raise CommandError(f"{path}: line {result.bad_line} {result.reason}",
                       hint="the log was changed after it was written; keep this copy as "
                            "evidence")


_HANDLERS = {
    "get": _get,
    "put": _put,
    "delete": _delete,
    "undelete": _undelete,
    "destroy": _destroy,
    "list": _list,
    "history": _history,
    "rollback": _rollback,
    "sync": _sync,
    "run": _run,
    "key rotate-master": _rotate_master,
    "audit tail": _audit_tail,
    "audit verify": _audit_verify,
}

