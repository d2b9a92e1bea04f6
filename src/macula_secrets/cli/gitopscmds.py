"""``gitops resolve``: an app spec's environment as JSON, dotenv, or a command's environment.

A thin shell over :func:`macula_secrets.gitops.resolve`. Values go to stdout
(or to the command) only after every entry resolved and every secret read
was written to the audit log, so a failure prints one error line and nothing
else. The store is opened only when the spec refers to secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from . import exitcodes as X
from .output import CommandError
from .storecmds import _open

if TYPE_CHECKING:
    from ..client import Secrets
    from ..gitops import AppSpec

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    if args.run == "gitops resolve":
        return _resolve(args)
    raise CommandError(f"unknown operation: {args.run}")


def _resolve(args: argparse.Namespace) -> int:
    command = _command(args)
    spec = _load(args.spec)
    values = _values(args, spec)
    if command is not None:
        _exec(command, values)
    sys.stdout.write(_render(values, args.format))
    return X.OK


def _command(args: argparse.Namespace) -> list[str] | None:
    """The command to run with ``--exec``, checked before any work is done."""
    command = list(args.command or ())
    if command and command[0] == "--":  # argparse drops one '--'; a second is no command
        command = command[1:]
    if not args.exec:
        if command:
            raise CommandError(f"unexpected argument {command[0]!r}",
                               hint="to run a command: gitops resolve SPEC --exec -- CMD")
        return None
    if not command:
        raise CommandError("no command given",
                           hint="put the command after '--': gitops resolve SPEC --exec -- CMD")
    return command


def _load(path: str) -> AppSpec:
    from ..gitops import load_spec, parse_spec

    if path == "-":
        return parse_spec(sys.stdin.buffer.read(), source="<stdin>")
    return load_spec(path)


def _values(args: argparse.Namespace, spec: AppSpec) -> dict[str, str]:
    from ..gitops import resolve

    if not spec.secret_refs():
        return resolve(spec, environ=os.environ)  # no store needed: none is opened
    with _open(args) as secrets:
        values = resolve(spec, secrets=secrets, environ=os.environ)
        _audit(secrets, spec)
    return values


def _audit(secrets: Secrets, spec: AppSpec) -> None:
    """Record each secret read, as ``get`` does; a read the log cannot record fails
    the command (fail closed) before any value is printed or handed to a command."""
    for ref in spec.secret_refs():
        tenant = ref.tenant or secrets.tenant
        version = ref.version or secrets.store.current_version(tenant, ref.app, ref.key)
        secrets.store.audit_read(tenant, ref.app, ref.key, version=version)


def _render(values: dict[str, str], fmt: str) -> str:
    if fmt == "dotenv":
        from ..gitops import to_dotenv

        return to_dotenv(dict(sorted(values.items())))
    return json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _exec(command: list[str], values: dict[str, str]) -> NoReturn:
    """Replace this process with ``command``, the values added to our environment."""
    from .runcmd import exec_command

    exec_command(command, {**os.environ, **values})
