"""Named policies and the rules a token carries: capabilities on tenant, app and key globs.

A token is issued with one named policy (``read``, ``write`` or ``admin``)
on one or more app globs and key globs, in exactly one tenant. The policy
fixes the capabilities (:data:`POLICIES`); :func:`build_rules` turns the
command-line options into :class:`~.auth.Rule` values, and refuses what
would widen a token by accident: a path separator or ``..`` in a glob, a
tenant that is a glob, every tenant without ``--all-tenants`` and ``admin``.

Deny by default lives in :meth:`.auth.Identity.allows`: this module only
decides what a token is granted, never what a request may do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

from ..errors import ConfigError, FormatError
from .auth import CAPABILITIES, Rule

__all__ = [
    "GLOB_CHARACTERS",
    "POLICIES",
    "PolicyName",
    "build_rules",
    "check_glob",
    "describe_rule",
    "dump_rules",
    "parse_rules",
    "rule_to_json",
]

PolicyName = Literal["read", "write", "admin"]

POLICIES: Final[Mapping[str, frozenset[str]]] = {
    "read": frozenset({"read", "list"}),
    "write": frozenset({"read", "list", "create", "update", "delete"}),
    "admin": CAPABILITIES,
}
"""Capabilities each named policy grants. ``write`` cannot destroy versions or
read and delete metadata; only ``admin`` can."""

GLOB_CHARACTERS: Final = frozenset("*?[]")
"""The ``fnmatch`` characters a glob may use beside the characters of a name."""

ALL_TENANTS: Final = "*"

_CONTROL: Final = frozenset(chr(c) for c in (*range(0x20), 0x7F))
_MAX_GLOB_BYTES: Final = 255
_GlobKind = Literal["tenant", "app", "key"]


def check_glob(kind: _GlobKind, glob: str) -> str:
    """Return ``glob`` when it is a valid ``kind`` glob, else raise ``ConfigError``.

    A glob follows the rules of a name (``_names.check_name``: no control
    characters, no path separator, no ``..``, at most 255 bytes) and may
    also use ``*``, ``?`` and ``[...]``. Names never hold ``/``, so a glob
    that could only match one would grant nothing; refusing it says so.
    """
    if not glob:
        raise ConfigError(f"{kind} glob is empty", hint="use '*' for every name")
    if any(ch in _CONTROL for ch in glob):
        raise ConfigError(f"{kind} glob contains a control character")
    if "/" in glob or "\\" in glob:
        raise ConfigError(f"{kind} glob {glob!r} contains a path separator",
                          hint="a glob matches one name: give --app and --key separately")
    if ".." in glob or glob == ".":
        raise ConfigError(f"{kind} glob {glob!r} contains '..' or is '.'")
    try:
        size = len(glob.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigError(f"{kind} glob is not valid Unicode text") from None
    if size > _MAX_GLOB_BYTES:
        raise ConfigError(f"{kind} glob is {size} bytes long, over the limit of "
                          f"{_MAX_GLOB_BYTES}")
    return glob


def _check_tenant(tenant: str) -> str:
    """An exact tenant name: the name rules, and no glob character at all.

    ``Rule.tenant`` is matched as a glob, so a tenant called ``a*`` would
    otherwise reach tenant ``ab`` too.
    """
    from .._names import check_name

    check_name("tenant", tenant)
    if GLOB_CHARACTERS & set(tenant):
        raise ConfigError(f"tenant name {tenant!r} contains a glob character (* ? [ ])",
                          hint="a token is for one exact tenant, or --all-tenants with "
                               "--policy admin")
    return tenant


def build_rules(
    policy: str,
    *,
    apps: Sequence[str],
    keys: Sequence[str] = ("*",),
    tenant: str = "default",
    all_tenants: bool = False,
) -> tuple[Rule, ...]:
    """The rules of a token: ``policy``'s capabilities on every pair of app and key glob.

    The token is confined to ``tenant`` (an exact name). ``all_tenants``
    replaces it with every tenant and is accepted only with the ``admin``
    policy: a read or write token never spans tenants.

    Raises:
        ConfigError: unknown policy, no app glob, a bad glob or tenant name,
            or ``all_tenants`` without ``admin``.
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}",
                          hint="choose one of " + ", ".join(POLICIES))
    if not apps:
        raise ConfigError("a token needs at least one app glob", hint="e.g. --app console")
    if not keys:
        raise ConfigError("a token needs at least one key glob", hint="e.g. --key '*'")
    if all_tenants:
        if policy != "admin":
            raise ConfigError(f"--all-tenants needs --policy admin, not {policy}",
                              hint="give the token one tenant with --tenant")
        scope = ALL_TENANTS
    else:
        scope = _check_tenant(tenant)
    app_globs = _unique(check_glob("app", a) for a in apps)
    key_globs = _unique(check_glob("key", k) for k in keys)
    capabilities = POLICIES[policy]
    return tuple(Rule(capabilities=capabilities, app=a, key=k, tenant=scope)
                 for a in app_globs for k in key_globs)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def describe_rule(rule: Rule) -> str:
    """``read,list on default/console/*``: capabilities in a fixed order, then the globs."""
    caps = ",".join(c for c in _CAPABILITY_ORDER if c in rule.capabilities)
    return f"{caps} on {rule.tenant}/{rule.app}/{rule.key}"


_CAPABILITY_ORDER: Final = ("read", "list", "create", "update", "delete", "destroy",
                            "metadata")


def dump_rules(rules: Sequence[Rule]) -> str:
    """Rules as canonical JSON (how the token store keeps them)."""
    return json.dumps([rule_to_json(r) for r in rules], sort_keys=True, separators=(",", ":"))


def rule_to_json(rule: Rule) -> dict[str, object]:
    caps = [c for c in _CAPABILITY_ORDER if c in rule.capabilities]
    return {"capabilities": caps, "tenant": rule.tenant, "app": rule.app, "key": rule.key}


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Read what :func:`dump_rules` wrote; anything else is a ``FormatError``.

    An unknown capability is an error rather than skipped: a rule this
    version does not understand must not be half-applied.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise FormatError("token rules are not JSON") from None
    if not isinstance(data, list):
        raise FormatError("token rules are not a JSON list")
    out = []
    for item in data:
        if not isinstance(item, dict):
            raise FormatError("a token rule is not a JSON object")
        caps = item.get("capabilities")
        globs = [item.get(k) for k in ("tenant", "app", "key")]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise FormatError("a token rule has no list of capabilities")
        unknown = set(caps) - CAPABILITIES
        if unknown:
            raise FormatError(f"a token rule has an unknown capability {sorted(unknown)[0]!r}")
        if not all(isinstance(g, str) and g for g in globs):
            raise FormatError("a token rule lacks a tenant, app or key glob")
        tenant, app, key = (str(g) for g in globs)
        out.append(Rule(capabilities=frozenset(caps), app=app, key=key, tenant=tenant))
    return tuple(out)
