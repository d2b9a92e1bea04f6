"""The ``token`` commands: create, list and revoke the server's tokens.

Thin shells over :class:`macula_secrets.server.tokens.TokenStore` at
``<home>/tokens.db``. ``token create`` prints the token once, on stdout, and
nothing else there (so ``TOKEN=$(macula-secrets token create ...)`` works);
what it is for goes to stderr. Nothing else ever prints a token: ``list``
and ``revoke`` work by accessor. Tokens need neither the master key nor the
``server`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from ..server.tokens import TokenInfo, TokenStore

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    handler = _HANDLERS[args.run]
    return handler(args)


def _open(args: argparse.Namespace) -> TokenStore:
    from .._config import load_config
    from ..audit import AuditLog
    from ..server.tokens import TokenStore

    config = load_config(home=args.home)
    return TokenStore.from_home(config.home, audit=AuditLog(config.audit_path))


def _when(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _to_json(info: TokenInfo, now: float) -> dict[str, object]:
    from ..server.policy import rule_to_json

    return {
        "accessor": info.accessor,
        "display_name": info.display_name,
        "policy": info.policy,
        "rules": [rule_to_json(r) for r in info.rules],
        "created_at": _when(info.created_at),
        "expires_at": None if info.expires_at is None else _when(info.expires_at),
        "revoked": info.revoked,
        "expired": info.is_expired(now),
    }


def _create(args: argparse.Namespace) -> int:
    from .._config import load_config
    from ..server.policy import build_rules, describe_rule
    from ..server.tokens import parse_ttl

    if args.all_tenants and args.tenant is not None:
        raise CommandError("--tenant and --all-tenants exclude each other",
                           hint="give one tenant, or --all-tenants with --policy admin")
    tenant = args.tenant if args.tenant is not None else load_config(home=args.home).tenant
    rules = build_rules(args.policy, apps=args.app, keys=args.key or ["*"], tenant=tenant,
                        all_tenants=args.all_tenants)
    ttl = None if args.ttl is None else parse_ttl(args.ttl)
    name = args.name if args.name is not None else f"{args.policy} {','.join(args.app)}"
    with _open(args) as store:
        token, info = store.create(rules, display_name=name, ttl=ttl, policy=args.policy,
                                   uid=args.uid)
    if args.json:
        doc = {"token": token, **_to_json(info, info.created_at)}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return X.OK
    sys.stdout.write(token + "\n")
    note(f"token {info.accessor} ({info.display_name}): policy {args.policy}, expires "
         f"{_when(info.expires_at)}")
    for rule in info.rules:
        note(f"  {describe_rule(rule)}")
    if args.uid is not None:
        note(f"  bound to Unix uid {args.uid} (on the server's Unix socket)")
    note("the token is shown only this once; revoke it with "
         f"'macula-secrets token revoke {info.accessor}'")
    return X.OK


def _list(args: argparse.Namespace) -> int:
    from ..server.policy import describe_rule

    with _open(args) as store:
        infos = store.list()
        bound = store.uids()
    now = time.time()
    if args.json:
        sys.stdout.write(json.dumps([_to_json(i, now) for i in infos], indent=2,
                                    ensure_ascii=False) + "\n")
        return X.OK
    if not infos:
        note("no tokens")
        return X.OK
    from .storecmds import format_table, is_terminal, use_colour

    if is_terminal(sys.stdout):
        sys.stdout.write(format_table(_table_rows(infos, bound, now),
                                      bold_header=use_colour(sys.stdout)))
        return X.OK
    # Piped: one line per token, its rules indented below (stable for scripts).
    out = []
    for i in infos:
        state = "revoked" if i.revoked else "expired" if i.is_expired(now) else "active"
        out.append(f"{i.accessor}  {state:<7}  expires {_when(i.expires_at):<20}  "
                   f"{i.display_name}\n")
        out.extend(f"    {describe_rule(r)}\n" for r in i.rules)
        out.extend(f"    unix uid {uid}\n" for uid in bound.get(i.accessor, []))
    sys.stdout.write("".join(out))
    return X.OK


def _table_rows(infos: list[TokenInfo], bound: dict[str, list[int]], now: float
                ) -> list[tuple[str, ...]]:
    """``token list`` for a terminal: one row per rule (and bound uid), the token's
    columns filled on its first row only."""
    from ..server.policy import describe_rule

    rows: list[tuple[str, ...]] = [("ACCESSOR", "STATE", "EXPIRES", "NAME", "RULES")]
    for i in infos:
        state = "revoked" if i.revoked else "expired" if i.is_expired(now) else "active"
        rules = [describe_rule(r) for r in i.rules]
        rules += [f"unix uid {uid}" for uid in bound.get(i.accessor, [])]
        first = (i.accessor, state, _when(i.expires_at), i.display_name)
        for n, rule in enumerate(rules or [""]):
            rows.append((*(first if n == 0 else ("",) * len(first)), rule))
    return rows


def _revoke(args: argparse.Namespace) -> int:
    from ..server.tokens import TOKEN_PREFIX, is_accessor

    accessor = args.accessor
    if accessor.startswith(TOKEN_PREFIX):
        # Someone pasted the token itself: say so without echoing it.
        raise CommandError("that is a token, not an accessor",
                           hint="find the accessor with 'macula-secrets token list'")
    if not is_accessor(accessor):
        raise CommandError("not an accessor (an accessor is 24 hex digits)",
                           hint="find it with 'macula-secrets token list'")
    with _open(args) as store:
        if store.revoke(accessor):
            note(f"token {accessor} revoked")
            return X.OK
        info = store.get(accessor)
    if info is None:
        raise CommandError(f"no token with accessor {accessor}",
                           hint="find it with 'macula-secrets token list'")
    note(f"token {accessor} was already revoked")
    return X.OK


_HANDLERS = {
    "token create": _create,
    "token list": _list,
    "token revoke": _revoke,
}
