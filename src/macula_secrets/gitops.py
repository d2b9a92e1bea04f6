"""Resolve an app spec: the environment a GitOps reconciler hands to an app.

An app spec is a YAML (or JSON) file kept in git next to the app's other
deployment files. Its ``env:`` section maps environment variable names to a
literal, to a secret in the store, or to a variable of the resolving
process's environment::

    app: console                 # default app for secret references without one
    env:
      LOG_LEVEL: info            # a literal
      WORKERS: 4                 # numbers are used as written: "4"
      DEBUG: false               # booleans become "true" / "false"
      DATABASE_URL: {secret: database_url}          # console/database_url
      STRIPE_KEY: {secret: billing/stripe_key, version: 3}
      ACME_TOKEN: {secret: edge/token, tenant: acme}
      REGION: {env: NODE_REGION, default: eu-west-1}

:func:`resolve` turns it into ``{name: value}``. Every reference must
resolve: a missing secret or an unset variable without a default is an
error that names each such entry (all of them, in one error), never an
empty or ``None`` value. Errors name entries and references, never values.

This is a thin layer over :class:`~macula_secrets.Secrets`; use ``Secrets``
directly to read single secrets, and ``macula-secrets run`` to export a
whole app. See docs/gitops.md.

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias

from ._names import InvalidNameError, check_name
from .errors import ConfigError, FormatError, LimitError, NotFoundError

if TYPE_CHECKING:
    from ._names import NameKind
    from .client import Secrets
    from .sops.stores._yaml.nodes import Node

__all__ = [
    "AppSpec",
    "EnvRef",
    "EnvVar",
    "LiteralValue",
    "SecretRef",
    "Spec",
    "Value",
    "load_spec",
    "parse_spec",
    "resolve",
    "to_dotenv",
]

ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What an entry's name must look like: a portable environment variable name."""

SECTIONS: Final = ("env", "environment")
"""Top-level keys that may hold the environment (one of them, not both)."""

_SECRET_KEYS: Final = frozenset({"secret", "tenant", "version"})
_ENV_KEYS: Final = frozenset({"env", "default"})
_REFERENCE_HINT: Final = ("write {secret: app/key} (with optional tenant and version) or "
                          "{env: VAR} (with an optional default)")


# -- the spec model -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiteralValue:
    """A value written in the spec itself. Its text stays out of ``repr``."""

    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``{secret: app/key}``: a secret of the store, optionally of another tenant or an
    older version. ``tenant=None`` is the tenant of the ``Secrets`` resolving it."""

    app: str
    key: str
    tenant: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        text = f"secret {self.app}/{self.key}"
        if self.version is not None:
            text += f" version {self.version}"
        if self.tenant is not None:
            text += f" of tenant {self.tenant}"
        return text


@dataclass(frozen=True, slots=True)
class EnvRef:
    """``{env: VAR}``: a variable of the resolving process's environment, else ``default``.

    A variable that is set to the empty string counts as set.
    """

    var: str
    default: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"environment variable {self.var}"


Value: TypeAlias = LiteralValue | SecretRef | EnvRef
"""Where an entry's value comes from."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One entry of the spec's environment: a variable name and where its value comes from."""

    name: str
    value: Value


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed app spec: its environment entries in the order they were written.

    ``source`` names the spec in error messages (a path, ``<stdin>``);
    ``section`` is the key the environment was under (``env`` or
    ``environment``); ``app`` is the spec's default app, already applied to
    its secret references.
    """

    env: tuple[EnvVar, ...]
    source: str = "spec"
    section: str = "env"
    app: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, source: str = "spec") -> AppSpec:
        """Check an already-parsed spec (a ``dict`` from a reconciler's own loader).

        Values are Python scalars: ``str``, ``bool`` (``"true"``/``"false"``),
        ``int`` and ``float`` (written with ``str``/``repr``), or a reference mapping.

        Raises:
            FormatError: the spec breaks a rule; the message names the entry.
        """
        return _build(data, source)

    def secret_refs(self) -> list[SecretRef]:
        """The secret references, in spec order (to check or audit before resolving)."""
        return [e.value for e in self.env if isinstance(e.value, SecretRef)]


# -- reading a spec -------------------------------------------------------------------


def parse_spec(text: str | bytes, *, source: str = "spec") -> AppSpec:
    """Parse app spec text (YAML 1.2, so JSON too); ``source`` names it in errors.

    Numbers, dates and other plain scalars are used as written (``01234``
    stays ``"01234"``, ``1.10`` stays ``"1.10"``), so YAML's typing never
    changes a value.

    Raises:
        FormatError: the text is not YAML, is not one mapping, or breaks a spec rule.
    """
    from .sops.stores._yaml.parser import parse_documents
    from .sops.stores._yaml.text import decode_text

    try:
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        docs = parse_documents(decode_text(data))
    except UnicodeEncodeError:
        raise FormatError(f"{source}: the spec is not valid Unicode text") from None
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}", hint=exc.hint) from None
    except RecursionError:
        raise LimitError(f"{source}: the spec nests too deeply") from None
    if len(docs) > 1:
        raise FormatError(f"{source}: the spec holds {len(docs)} YAML documents, not one",
                          hint="keep one app spec per file")
    root = _follow(docs[0].content[0], source) if docs and docs[0].content else None
    if root is None:
        raise FormatError(f"{source}: the spec is empty")
    return _build(_top_level(root, source), source)


def load_spec(path: str | os.PathLike[str]) -> AppSpec:
    """Read and parse the app spec file at ``path`` (named by its path in errors).

    Raises:
        ConfigError: the file cannot be read.
        FormatError: as for :func:`parse_spec`.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read spec {name}: {exc.strerror}") from None
    return parse_spec(data, source=name)


@dataclass(frozen=True, slots=True)
class _Verbatim:
    """A plain YAML scalar that is neither text, a boolean nor null (a number, a date):
    its source text, which is what the spec's author wrote, and its typed value."""

    text: str
    value: object


_NODE_LEVELS: Final = 2  # env mapping -> entry value -> reference fields


def _top_level(root: Node, source: str) -> dict[str, object]:
    """The top-level keys a spec uses, as Python values.

    Only ``app`` and the environment are converted, and only as deep as a
    spec goes, so other keys (``image``, ``containers``) may hold anything,
    and an alias bomb elsewhere in the file costs nothing.
    """
    from .sops.stores._yaml import nodes as P

    if root.kind != P.MAPPING:
        raise FormatError(f"{source}: the spec must be a mapping with an env section")
    used = {"app", *SECTIONS}
    return {k: _plain(v, _NODE_LEVELS, source) for k, v in _pairs(root, source) if k in used}


def _pairs(mapping: Node, source: str) -> list[tuple[str, Node]]:
    """A mapping node's (key text, value node) pairs; a repeated key is an error."""
    out: list[tuple[str, Node]] = []
    from .sops.stores._yaml import nodes as P

    seen: dict[str, int] = {}
    content = mapping.content
    for i in range(0, len(content) - 1, 2):
        knode = _follow(content[i], source)
        if knode.kind != P.SCALAR:
            raise FormatError(f"{source}: line {knode.line}: a key must be text")
        key = knode.value
        if key in seen:
            raise FormatError(f"{source}: line {knode.line}: key {key!r} appears twice "
                              f"(first at line {seen[key]})")
        seen[key] = knode.line
        out.append((key, content[i + 1]))
    return out


def _follow(node: Node, source: str) -> Node:
    """The node an alias names (aliases of aliases too)."""
    from .sops.stores._yaml import nodes as P

    for _ in range(100):
        if node.kind != P.ALIAS:
            return node
        if node.alias is None:
            raise FormatError(f"{source}: line {node.line}: unknown anchor referenced")
        node = node.alias
    raise FormatError(f"{source}: line {node.line}: aliases nest too deeply")


def _plain(node: Node, levels: int, source: str) -> object:
    """A node as Python values, mappings ``levels`` deep (deeper ones become ``{}``)."""
    from .sops.stores._yaml import nodes as P
    from .sops.stores.yaml import decode_scalar

    node = _follow(node, source)
    if node.kind == P.SCALAR:
        value = decode_scalar(node)
        if value is None or isinstance(value, (str, bool)):
            return value
        return _Verbatim(node.value, value)
    if node.kind == P.SEQUENCE:
        return []  # never a valid value here; its items do not matter
    if levels == 0:
        return {}
    return {k: _plain(v, levels - 1, source) for k, v in _pairs(node, source)}


# -- checking a spec ------------------------------------------------------------------


def _build(data: object, source: str) -> AppSpec:
    """The spec model of a top-level mapping; every rule is checked here, once."""
    if not isinstance(data, Mapping):
        raise FormatError(f"{source}: the spec must be a mapping with an env section")
    app = data.get("app")
    if app is not None:
        app = _name(f"{source}: app", "app", app)
    present = [s for s in SECTIONS if s in data]
    if len(present) != 1:
        what = "both env and environment" if present else "no env section"
        raise FormatError(f"{source}: the spec has {what}",
                          hint="put the variables under one env: key, as NAME: value")
    section = present[0]
    entries = data[section]
    if entries is None:
        entries = {}  # `env:` with nothing under it: an app without variables
    if not isinstance(entries, Mapping):
        raise FormatError(f"{source}: {section} must be a mapping of NAME: value",
                          hint="a list of name/value items (Kubernetes style) is not read; "
                               "write NAME: value")
    env = tuple(_env_var(source, section, name, value, app) for name, value in entries.items())
    return AppSpec(env, source=source, section=section, app=app)


def _env_var(source: str, section: str, name: object, value: object,
             app: str | None) -> EnvVar:
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise FormatError(f"{source}: {section}: {name!r} is not a valid environment "
                          "variable name",
                          hint="use letters, digits and '_', not starting with a digit")
    where = f"{source}: {section}.{name}"
    if isinstance(value, Mapping):
        return EnvVar(name, _reference(where, value, app))
    return EnvVar(name, LiteralValue(_literal(where, value)))


def _literal(where: str, value: object) -> str:
    """A literal as environment text (YAML 1.2 spellings for booleans)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, _Verbatim):
        text = value.text
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    elif value is None:
        raise FormatError(f"{where}: the value is null",
                          hint='write "" for an empty value, or remove the entry')
    elif isinstance(value, list):
        raise FormatError(f"{where}: a list cannot be an environment value",
                          hint="join the items into one string")
    else:
        raise FormatError(f"{where}: a {type(value).__name__} cannot be an environment value")
    _check_no_nul(where, text)
    return text


def _check_no_nul(where: str, text: str) -> None:
    if "\x00" in text:
        raise FormatError(f"{where}: the value contains a NUL byte, which no environment "
                          "variable can hold")


def _reference(where: str, ref: Mapping[object, object], app: str | None) -> SecretRef | EnvRef:
    kinds = [k for k in ("secret", "env") if k in ref]
    if len(kinds) != 1:
        what = "both secret and env" if kinds else "neither secret nor env"
        raise FormatError(f"{where}: the reference has {what}", hint=_REFERENCE_HINT)
    kind = kinds[0]
    allowed = _SECRET_KEYS if kind == "secret" else _ENV_KEYS
    unknown = sorted(repr(k) for k in ref if k not in allowed)
    if unknown:
        raise FormatError(f"{where}: unknown key {', '.join(unknown)} in a {kind} reference",
                          hint=_REFERENCE_HINT)
    if kind == "secret":
        return _secret_ref(where, ref, app)
    return _env_ref(where, ref)


def _secret_ref(where: str, ref: Mapping[object, object], app: str | None) -> SecretRef:
    target = ref["secret"]
    if not isinstance(target, str):
        raise FormatError(f"{where}: secret must be app/key text", hint=_REFERENCE_HINT)
    parts = target.split("/")
    if len(parts) == 1 and app is not None:
        parts = [app, target]
    elif len(parts) == 1:
        raise FormatError(f"{where}: secret {target!r} names no app",
                          hint="write app/key, or set app: at the top of the spec")
    elif len(parts) != 2:
        raise FormatError(f"{where}: secret {target!r} is not app/key",
                          hint="a key name has no '/'")
    tenant = ref.get("tenant")
    return SecretRef(_name(where, "app", parts[0]), _name(where, "key", parts[1]),
                     tenant=None if tenant is None else _name(where, "tenant", tenant),
                     version=_version(where, ref.get("version")))


def _name(where: str, kind: NameKind, name: object) -> str:
    try:
        return check_name(kind, name)
    except InvalidNameError as exc:
        raise FormatError(f"{where}: {exc}") from None


def _version(where: str, version: object) -> int | None:
    if version is None:
        return None
    number = version.value if isinstance(version, _Verbatim) else version
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise FormatError(f"{where}: version must be a whole number of 1 or more")
    return number


def _env_ref(where: str, ref: Mapping[object, object]) -> EnvRef:
    var = ref["env"]
    if not isinstance(var, str) or not var or "=" in var or "\x00" in var:
        raise FormatError(f"{where}: env must name an environment variable",
                          hint=_REFERENCE_HINT)
    if "default" not in ref:
        return EnvRef(var)
    return EnvRef(var, _literal(f"{where}: default", ref["default"]))


# -- resolving ------------------------------------------------------------------------


Spec: TypeAlias = AppSpec | Mapping[str, object] | str | os.PathLike[str]
"""What :func:`resolve` takes: a parsed spec, a mapping, or the path of a spec file."""


def resolve(spec: Spec, *, secrets: Secrets | None = None,
            environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve the spec's environment into ``{name: value}``, in spec order.

    ``spec`` is an :class:`AppSpec`, a mapping (checked with
    :meth:`AppSpec.from_mapping`) or the path of a spec file (``str`` or
    path-like; for YAML text, pass ``parse_spec(text)``). Secrets are read
    through ``secrets`` (an entry's ``tenant`` through
    :meth:`~macula_secrets.Secrets.with_tenant`); when it is ``None`` and the
    spec has secret references, ``Secrets.open()`` (configured by this
    process's environment) is opened for the call and closed after it.
    ``environ`` (default ``os.environ``) is only where ``{env: VAR}`` looks: a
    mapping of deploy variables never redirects the store.

    Example::

        from macula_secrets import Secrets
        from macula_secrets.gitops import resolve

        with Secrets.open() as secrets:
            values = resolve("deploy/console.yaml", secrets=secrets)

    Raises:
        NotFoundError: secrets or variables are missing; the message names
            every such entry and what it refers to.
        FormatError: the spec breaks a rule, or a value holds a NUL byte.
        ConfigError: the spec file cannot be read.
    """
    app_spec = _as_spec(spec)
    env = os.environ if environ is None else environ
    if secrets is None and app_spec.secret_refs():
        from .client import Secrets

        with Secrets.open() as opened:
            return _resolve(app_spec, opened, env)
    return _resolve(app_spec, secrets, env)


def _as_spec(spec: Spec) -> AppSpec:
    if isinstance(spec, AppSpec):
        return spec
    if isinstance(spec, Mapping):
        return AppSpec.from_mapping(spec)
    return load_spec(spec)


def _resolve(spec: AppSpec, secrets: Secrets | None, environ: Mapping[str, str]
             ) -> dict[str, str]:
    views: dict[str | None, Secrets] = {}
    values: dict[str, str] = {}
    missing: list[tuple[str, Value, str]] = []  # (entry name, reference, what is missing)
    for entry in spec.env:
        ref = entry.value
        if isinstance(ref, LiteralValue):
            value: str | None = ref.text
        elif isinstance(ref, EnvRef):
            value = environ.get(ref.var, ref.default)
            if value is None:
                missing.append((entry.name, ref, f"{ref} is not set"))
        else:
            assert secrets is not None  # noqa: S101 - resolve() opened one
            view = views.get(ref.tenant)
            if view is None:
                view = views[ref.tenant] = _view(secrets, ref.tenant)
            value = view.get(ref.app, ref.key, version=ref.version)
            if value is None:
                missing.append((entry.name, ref, _not_found(ref, view.tenant)))
        if value is not None:
            _check_no_nul(f"{spec.source}: {spec.section}.{entry.name}", value)
            values[entry.name] = value
    if missing:
        raise _missing_error(spec, missing)
    return values


def _view(secrets: Secrets, tenant: str | None) -> Secrets:
    if tenant is None or tenant == secrets.tenant:
        return secrets
    return secrets.with_tenant(tenant)


def _not_found(ref: SecretRef, tenant: str) -> str:
    """What was looked for; the tenant is named when it is not the default one."""
    if ref.tenant is None and tenant != "default":
        return f"{ref} of tenant {tenant} not found"
    return f"{ref} not found"


def _missing_error(spec: AppSpec, missing: list[tuple[str, Value, str]]) -> NotFoundError:
    """One error naming every unresolved entry and what it refers to, never a value."""
    named = [(f"{spec.section}.{name}", problem) for name, _ref, problem in missing]
    if len(named) == 1:
        message = f"{spec.source}: {named[0][0]}: {named[0][1]}"
    else:
        listed = "; ".join(f"{entry}: {problem}" for entry, problem in named)
        message = f"{spec.source}: {len(named)} entries cannot be resolved: {listed}"
    hints = []
    if any(isinstance(ref, SecretRef) for _name, ref, _problem in missing):
        hints.append("add secrets with `macula-secrets put APP KEY` or sync the secrets "
                     "folder")
    if any(isinstance(ref, EnvRef) for _name, ref, _problem in missing):
        hints.append("set the variables, or give the entries a default: {env: VAR, "
                     "default: ...}")
    return NotFoundError(message, hint="; ".join(hints))


# -- output ---------------------------------------------------------------------------


def to_dotenv(values: Mapping[str, str]) -> str:
    """Write ``values`` as dotenv text that python-dotenv reads back exactly, in order.

    One ``NAME="value"`` line each, quotes, backslashes and line breaks
    escaped, so ``dotenv_values()`` returns the same strings with
    interpolation on (its default) or off. A value holding a ``${VAR}``
    reference is refused rather than written: dotenv has no escape for it,
    and a reader that interpolates would replace it.

    Raises:
        FormatError: a value holds a ``${...}`` reference (the error names the
            variable, not the value).
        ConfigError: a name is not one dotenv can hold.
    """
    from dotenv.variables import Variable, parse_variables

    from .backends.envfile import format_dotenv

    for name, value in values.items():
        if any(isinstance(atom, Variable) for atom in parse_variables(value)):
            raise FormatError(
                f"cannot write {name} as dotenv: its value holds a ${{...}} reference, "
                "which dotenv readers expand",
                hint="use JSON output, or pass the values to the command directly (--exec)")
    return format_dotenv(values)
