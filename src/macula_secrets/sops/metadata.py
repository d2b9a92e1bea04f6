"""The ``sops`` metadata block: on-disk form <-> :class:`Metadata`.

Stores hand this module the metadata as a plain tree (a :class:`Branch` of
strings, numbers, lists and branches, whatever the file format) and get one
back to write. Field names, their order (that of sops 3.11/3.12) and the
rules for which fields are written follow SOPS_FORMAT.md section 4.

Key types other than age (pgp, kms, gcp_kms, azure_kv, hc_vault, hckms) are
carried through unchanged as :class:`ForeignKey` so that editing a file never
drops another team's keys; they cannot be used to decrypt here.

Plain slotted classes rather than dataclasses: importing ``dataclasses``
costs more start-up time than ``macula-secrets decrypt`` can spare.
"""

from __future__ import annotations

from typing import Final

from ..errors import ConfigError, FormatError, LimitError
from ._gofmt import normalize_rfc3339
from .tree import Branch

__all__ = [
    "DEFAULT_UNENCRYPTED_SUFFIX",
    "SELECTION_RULES",
    "SOPS_VERSION",
    "AgeKey",
    "ForeignKey",
    "MasterKey",
    "Metadata",
]

SOPS_VERSION: Final = "3.11.0"
DEFAULT_UNENCRYPTED_SUFFIX: Final = "_unencrypted"

#: The six rules that decide which values are encrypted; at most one per file.
SELECTION_RULES: Final = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)

#: Key types in the order sops 3.11 writes them (age sits between azure and pgp
#: at top level because the struct has ``lastmodified``/``mac`` before ``pgp``).
_FOREIGN_TYPES: Final = ("kms", "gcp_kms", "azure_kv", "hc_vault", "hckms", "pgp")
_KEY_TYPES: Final = ("kms", "gcp_kms", "azure_kv", "hc_vault", "hckms", "age", "pgp")

#: Hostile-input limits; generous for real files.
MAX_KEY_GROUPS: Final = 64
MAX_KEYS_PER_FILE: Final = 1024


class AgeKey:
    """An age master key entry: the recipient and the armored wrapped data key."""

    __slots__ = ("enc", "recipient")

    def __init__(self, recipient: str, enc: str) -> None:
        self.recipient = recipient
        self.enc = enc

    def to_branch(self) -> Branch:
        return Branch([("recipient", self.recipient), ("enc", self.enc)])

    def __repr__(self) -> str:
        return f"AgeKey({self.recipient!r})"


class ForeignKey:
    """A master key of a type this tool cannot use (pgp, kms, ...), kept verbatim."""

    __slots__ = ("fields", "kind")

    def __init__(self, kind: str, fields: Branch) -> None:
        self.kind = kind
        self.fields = fields

    @property
    def label(self) -> str:
        """A short, public description used in messages."""
        for name in ("fp", "arn", "resource_id", "vault_url", "vault_address", "key_id"):
            v = self.fields.get(name)
            if isinstance(v, str) and v:
                return f"{self.kind}:{v}"
        return self.kind

    def to_branch(self) -> Branch:
        return self.fields

    def __repr__(self) -> str:
        return f"ForeignKey({self.label!r})"


MasterKey = AgeKey | ForeignKey


class Metadata:
    """Everything in a file's ``sops`` block, in internal form.

    ``key_groups`` always holds at least one group; a single group is written
    as flat key lists, several as ``key_groups`` plus ``shamir_threshold``.
    ``rule`` is the one selection rule in force as ``(name, value)``.
    """

    __slots__ = (
        "key_groups",
        "lastmodified",
        "mac",
        "mac_only_encrypted",
        "rule",
        "shamir_threshold",
        "version",
    )

    def __init__(
        self,
        key_groups: list[list[MasterKey]],
        *,
        shamir_threshold: int = 0,
        lastmodified: str = "",
        mac: str = "",
        rule: tuple[str, str] | None = (
            "unencrypted_suffix",
            DEFAULT_UNENCRYPTED_SUFFIX,
        ),
        mac_only_encrypted: bool = False,
        version: str = SOPS_VERSION,
    ) -> None:
        self.key_groups = key_groups
        self.shamir_threshold = shamir_threshold
        self.lastmodified = lastmodified
        self.mac = mac
        self.rule = rule
        self.mac_only_encrypted = mac_only_encrypted
        self.version = version

    def __repr__(self) -> str:
        return (
            f"Metadata(groups={len(self.key_groups)}, threshold={self.shamir_threshold}, "
            f"recipients={self.recipients()!r}, rule={self.rule!r})"
        )

    def recipients(self) -> list[str]:
        """Every public recipient in the file, for messages (never secret)."""
        out: list[str] = []
        for group in self.key_groups:
            for key in group:
                out.append(key.recipient if isinstance(key, AgeKey) else key.label)
        return out

    def mac_aad(self) -> str:
        """The associated data of the MAC: ``lastmodified`` re-printed as Go does."""
        return normalize_rfc3339(self.lastmodified, fraction=False)

    # -- on-disk form -------------------------------------------------------

    @classmethod
    def from_branch(cls, raw: object) -> Metadata:
        """Validate and convert a file's ``sops`` value.

        Raises:
            FormatError: a field has the wrong type, ``lastmodified`` or
                ``version`` are not valid, or the file lists no keys.
            ConfigError: more than one selection rule is present.
            LimitError: more key groups or keys than a real file has.
        """
        if not isinstance(raw, Branch):
            raise FormatError("sops metadata is not a mapping")
        fields: dict[str, object] = {}
        for k, v in raw:
            if isinstance(k, str) and k not in fields:
                fields[k] = v

        lastmodified = _opt_str(fields, "lastmodified")
        try:
            normalize_rfc3339(lastmodified, fraction=False)
        except ValueError:
            raise FormatError("sops metadata: lastmodified is not an RFC 3339 time") from None
        version = _opt_str(fields, "version")
        if not version:
            raise FormatError("sops metadata: version string empty")
        if not _is_semver(version):
            raise FormatError("sops metadata: version is not MAJOR.MINOR.PATCH")

        rules = [(name, _opt_str(fields, name)) for name in SELECTION_RULES]
        present = [(n, v) for n, v in rules if v]
        if len(present) > 1:
            raise ConfigError(
                "cannot use more than one of encrypted_suffix, unencrypted_suffix, "
                "encrypted_regex, unencrypted_regex, encrypted_comment_regex, or "
                "unencrypted_comment_regex in the same file"
            )
        rule = present[0] if present else ("unencrypted_suffix", DEFAULT_UNENCRYPTED_SUFFIX)

        flat = _group_from(fields)
        if flat:
            groups = [flat]
        else:
            raw_groups = fields.get("key_groups")
            groups = []
            if raw_groups is not None:
                if not isinstance(raw_groups, list):
                    raise FormatError("sops metadata: key_groups is not a list")
                if len(raw_groups) > MAX_KEY_GROUPS:
                    raise LimitError(
                        f"sops metadata lists {len(raw_groups)} key groups "
                        f"(limit {MAX_KEY_GROUPS})"
                    )
                for g in raw_groups:
                    if not isinstance(g, Branch):
                        raise FormatError("sops metadata: a key group is not a mapping")
                    groups.append(_group_from({k: v for k, v in g if isinstance(k, str)}))
            if not any(groups):
                raise FormatError("no keys found in file")
        total = sum(len(g) for g in groups)
        if total > MAX_KEYS_PER_FILE:
            raise LimitError(f"sops metadata lists {total} keys (limit {MAX_KEYS_PER_FILE})")

        threshold = fields.get("shamir_threshold", 0)
        if isinstance(threshold, float) and threshold.is_integer():
            threshold = int(threshold)
        if isinstance(threshold, str):
            try:
                threshold = int(float(threshold))
            except ValueError:
                raise FormatError("sops metadata: shamir_threshold is not a number") from None
        if threshold is None:
            threshold = 0
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise FormatError("sops metadata: shamir_threshold is not a number")

        mac_only = fields.get("mac_only_encrypted", False)
        if isinstance(mac_only, str):
            mac_only = mac_only.lower() == "true"
        return cls(
            groups,
            shamir_threshold=threshold,
            lastmodified=lastmodified,
            mac=_opt_str(fields, "mac"),
            rule=rule,
            mac_only_encrypted=bool(mac_only),
            version=version,
        )

    def to_branch(self) -> Branch:
        """Return the on-disk ``sops`` value, fields in sops 3.11's order."""
        out = Branch()
        if self.shamir_threshold:
            out.append(("shamir_threshold", self.shamir_threshold))
        if len(self.key_groups) > 1:
            groups: list[object] = []
            for group in self.key_groups:
                gb = Branch()
                for kind in ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "age", "hckms"):
                    keys = _keys_of(group, kind)
                    # sops 3.11 always writes hc_vault and age in a group, even empty.
                    if keys or kind in ("hc_vault", "age"):
                        gb.append((kind, keys))
                groups.append(gb)
            out.append(("key_groups", groups))
            top: list[MasterKey] = []
        else:
            top = self.key_groups[0] if self.key_groups else []
        for kind in ("kms", "gcp_kms", "azure_kv", "hc_vault", "age"):
            keys = _keys_of(top, kind)
            if keys:
                out.append((kind, keys))
        out.append(("lastmodified", self.lastmodified))
        out.append(("mac", self.mac))
        keys = _keys_of(top, "pgp")
        if keys:
            out.append(("pgp", keys))
        hckms = _keys_of(top, "hckms")
        if hckms:
            out.append(("hckms", hckms))
        if self.rule is not None:
            out.append(self.rule)
        if self.mac_only_encrypted:
            out.append(("mac_only_encrypted", True))
        out.append(("version", self.version))
        return out


def _keys_of(group: list[MasterKey], kind: str) -> list[object]:
    if kind == "age":
        return [k.to_branch() for k in group if isinstance(k, AgeKey)]
    return [k.to_branch() for k in group if isinstance(k, ForeignKey) and k.kind == kind]


def _group_from(fields: dict[str, object]) -> list[MasterKey]:
    group: list[MasterKey] = []
    for kind in _KEY_TYPES:
        entries = fields.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise FormatError(f"sops metadata: {kind} is not a list")
        if len(entries) > MAX_KEYS_PER_FILE:
            raise LimitError(f"sops metadata lists {len(entries)} {kind} keys")
        for e in entries:
            if not isinstance(e, Branch):
                raise FormatError(f"sops metadata: a {kind} entry is not a mapping")
            if kind == "age":
                recipient = e.get("recipient", "")
                enc = e.get("enc", "")
                if not isinstance(recipient, str) or not isinstance(enc, str):
                    raise FormatError("sops metadata: an age entry is not two strings")
                group.append(AgeKey(recipient, enc))
            else:
                group.append(ForeignKey(kind, e))
    return group


def _opt_str(fields: dict[str, object], name: str) -> str:
    v = fields.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise FormatError(f"sops metadata: {name} is not a string")
    return v


_SEMVER_IDENT_CHARS: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
)


def _is_semver(v: str) -> bool:
    """Whether sops 3.11 accepts ``v`` (blang/semver rules, an optional leading ``v``).

    No regular expression: this runs on every decrypt, and compiling one
    costs more start-up time than the check itself.
    """
    if v[:1] == "v":
        v = v[1:]
    v, plus, build = v.partition("+")
    if plus and not _semver_identifiers(build, numeric=False):
        return False
    core, dash, pre = v.partition("-")
    if dash and not _semver_identifiers(pre, numeric=True):
        return False
    parts = core.split(".")
    return len(parts) == 3 and all(
        p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") for p in parts
    )


def _semver_identifiers(text: str, *, numeric: bool) -> bool:
    for part in text.split("."):
        if not part or not _SEMVER_IDENT_CHARS.issuperset(part):
            return False
        if numeric and part.isdigit() and len(part) > 1 and part[0] == "0":
            return False
    return True
