""".sops.yaml: where it is found, and which creation rule applies to a file.

Found as sops finds it (SOPS_FORMAT.md 7): ``--config``/``SOPS_CONFIG`` if
given, else ``.sops.yaml`` in the working directory or the nearest parent
(not the directory of the target file). A rule's ``path_regex`` is matched
(searched, unanchored) against the target path relative to the config file's
folder when the target lies under it, else against the absolute path. The
first rule without ``path_regex`` or with a matching one wins; if rules
exist but none matches, that is an error even when keys are given on the
command line.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Final

from ..errors import ConfigError, FormatError
from .metadata import SELECTION_RULES

if TYPE_CHECKING:
    pass

__all__ = ["CONFIG_NAME", "CreationRule", "SopsConfig", "find_config", "load_config"]

CONFIG_NAME: Final = ".sops.yaml"
_MAX_PARENTS: Final = 100
_FOREIGN_RULE_KEYS: Final = (
    "pgp", "kms", "gcp_kms", "azure_keyvault", "hc_vault_transit_uri", "hckms",
)


class CreationRule:
    """One ``creation_rules`` entry, reduced to what age-only encryption needs."""

    __slots__ = ("key_groups", "mac_only_encrypted", "path_regex", "rule", "shamir_threshold")

    def __init__(
        self,
        *,
        path_regex: str = "",
        key_groups: list[list[str]] | None = None,
        shamir_threshold: int = 0,
        rule: tuple[str, str] | None = None,
        mac_only_encrypted: bool = False,
    ) -> None:
        self.path_regex = path_regex
        self.key_groups = key_groups or []
        self.shamir_threshold = shamir_threshold
        self.rule = rule
        self.mac_only_encrypted = mac_only_encrypted

    def __repr__(self) -> str:
        return f"CreationRule(path_regex={self.path_regex!r}, groups={self.key_groups!r})"


class SopsConfig:
    """A parsed ``.sops.yaml``: creation rules and output formatting."""

    __slots__ = ("has_rules", "path", "rules", "store_indent")

    def __init__(
        self,
        path: str | None,
        rules: list[CreationRule],
        *,
        has_rules: bool,
        store_indent: dict[str, int],
    ) -> None:
        self.path = path
        self.rules = rules
        self.has_rules = has_rules
        self.store_indent = store_indent

    def rule_for(self, target: str | os.PathLike[str]) -> CreationRule | None:
        """The creation rule for ``target``, or ``None`` when the file has no rules.

        Raises ``ConfigError`` when rules exist and none matches.
        """
        if not self.has_rules:
            return None
        absolute = os.path.abspath(os.fspath(target))
        candidate = absolute
        if self.path is not None:
            base = os.path.dirname(os.path.abspath(self.path))
            prefix = base.rstrip("/") + "/"
            if absolute.startswith(prefix):
                candidate = absolute[len(prefix):]
        for rule in self.rules:
            if not rule.path_regex:
                return rule
            try:
                if re.search(rule.path_regex, candidate):
                    return rule
            except re.error as exc:
                raise ConfigError(f"invalid path_regex {rule.path_regex!r}: {exc}") from None
        raise ConfigError(
            "error loading config: no matching creation rules found",
            hint=f"add a rule for {candidate} to {self.path}",
        )


def find_config(
    start: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None
) -> str | None:
    """Locate the config: ``SOPS_CONFIG``, else ``.sops.yaml`` in ``start`` or a parent."""
    env = dict(os.environ) if env is None else env
    explicit = env.get("SOPS_CONFIG")
    if explicit:
        return explicit
    here = os.path.abspath(os.fspath(start) if start is not None else os.getcwd())
    for _ in range(_MAX_PARENTS):
        candidate = os.path.join(here, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return None


def load_config(path: str | os.PathLike[str] | None) -> SopsConfig:
    """Parse ``path`` (``None`` gives an empty config)."""
    if path is None:
        return SopsConfig(None, [], has_rules=False, store_indent={})
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    from .stores.yaml import load_yaml_data

    try:
        doc = load_yaml_data(data)
    except FormatError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config {path} is not a mapping")
    store_indent: dict[str, int] = {}
    stores = doc.get("stores") or {}
    if isinstance(stores, dict):
        for fmt in ("yaml", "json", "json_binary"):
            section = stores.get(fmt)
            if isinstance(section, dict) and isinstance(section.get("indent"), int):
                store_indent[fmt] = section["indent"]
    has_rules = "creation_rules" in doc
    raw_rules = doc.get("creation_rules") or []
    if not isinstance(raw_rules, list):
        raise ConfigError(f"config {path}: creation_rules is not a list")
    rules = [_rule(r, path, i) for i, r in enumerate(raw_rules)]
    return SopsConfig(path, rules, has_rules=has_rules, store_indent=store_indent)


def _split_keys(value: object, *, where: str) -> list[str]:
    """``age`` as a comma string or a list (each item may itself hold commas)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: age keys must be strings")
        out.extend(k.strip() for k in item.split(",") if k.strip())
    return out


def _rule(raw: object, path: str, index: int) -> CreationRule:
    where = f"{path}: creation_rules[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a mapping")
    path_regex = raw.get("path_regex") or ""
    if not isinstance(path_regex, str):
        raise ConfigError(f"{where}: path_regex is not a string")
    groups: list[list[str]] = []
    if raw.get("key_groups"):
        raw_groups = raw["key_groups"]
        if not isinstance(raw_groups, list):
            raise ConfigError(f"{where}: key_groups is not a list")
        for gi, g in enumerate(raw_groups):
            groups.append(_group(g, f"{where}.key_groups[{gi}]"))
    else:
        for foreign in _FOREIGN_RULE_KEYS:
            if raw.get(foreign):
                raise ConfigError(
                    f"{where}: {foreign} keys are not supported by macula-secrets (age only)",
                    hint="encrypt to age recipients, or use sops for this file",
                )
        age = _split_keys(raw.get("age"), where=where)
        if age:
            groups.append(age)
    threshold = raw.get("shamir_threshold") or 0
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise ConfigError(f"{where}: shamir_threshold is not a number")
    present = [(n, raw[n]) for n in SELECTION_RULES if raw.get(n)]
    if len(present) > 1:
        raise ConfigError(
            f"{where}: cannot use more than one of encrypted_suffix, unencrypted_suffix, "
            "encrypted_regex, unencrypted_regex, encrypted_comment_regex, or "
            "unencrypted_comment_regex in the same rule"
        )
    rule = None
    if present:
        name, value = present[0]
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} is not a string")
        rule = (name, value)
    return CreationRule(
        path_regex=path_regex,
        key_groups=groups,
        shamir_threshold=threshold,
        rule=rule,
        mac_only_encrypted=bool(raw.get("mac_only_encrypted")),
    )


def _group(raw: object, where: str) -> list[str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a mapping")
    for foreign in (*_FOREIGN_RULE_KEYS, "hc_vault"):
        if raw.get(foreign):
            raise ConfigError(
                f"{where}: {foreign} keys are not supported by macula-secrets (age only)"
            )
    keys = _split_keys(raw.get("age"), where=where)
    for mi, merged in enumerate(raw.get("merge") or []):
        keys.extend(_group(merged, f"{where}.merge[{mi}]"))
    # Keys inside a key group are de-duplicated, as sops does.
    seen: set[str] = set()
    out = []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out
