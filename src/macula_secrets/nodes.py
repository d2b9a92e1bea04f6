"""Node enrollment over a GitOps secrets folder: add, remove and list nodes.

A *node* is a machine that decrypts the folder's SOPS files with its own age
identity (an ``age1...`` X25519 key or its ``ssh-ed25519`` host key). Its
public key is an age recipient in the ``.sops.yaml`` creation rules; its name
is recorded in a top-level ``nodes:`` mapping of the same file
(``name: recipient``). sops ignores unknown top-level keys of ``.sops.yaml``
(SOPS_FORMAT.md 7.2; checked against sops 3.11 in tests/interop/test_nodes.py),
and the recipient line in a rule carries a ``# node: NAME`` comment for people
reading the rules.

* :func:`add_node` adds the recipient to the rules that match the folder's
  files and re-wraps each file's data key for the new recipient set (as
  ``updatekeys``: values, MAC and ``lastmodified`` stay as they were).
* :func:`remove_node` takes the recipient out of every rule and *rotates* each
  file the node could read (new data key, every value re-encrypted), so the
  data key the node may have kept opens nothing written after its removal.
* :func:`list_nodes` reports the nodes, the rules that hold them and the files
  whose metadata lists them.

``.sops.yaml`` is edited as text, line by line, so its comments, order and
layout stay as they were; the result is parsed again and compared with the
intended rules before anything is written. Every new file is prepared (written
to a temporary file next to its target and fsynced) before the first one
replaces its target, so a file that cannot be opened or written means no file
changes. This module does no terminal I/O; ``cli/nodecmds.py`` is its shell.
Most callers want the ``macula-secrets node`` commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from .errors import ConfigError, FormatError, MaculaError
from .sops.config import CreationRule, SopsConfig, find_config, load_config
from .sops.keygroups import Unwrapper
from .sops.metadata import AgeKey, Metadata
from .sops.stores._yaml import nodes as P
from .sops.stores._yaml.nodes import Node as YAMLNode

__all__ = [
    "NODES_KEY",
    "NodeChange",
    "NodeInfo",
    "NodeListing",
    "NodeUpdateError",
    "add_node",
    "list_nodes",
    "remove_node",
]

#: The top-level ``.sops.yaml`` key that maps node names to recipients.
NODES_KEY: Final = "nodes"

_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PLAIN_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9+/=@._ -]*")
_MAX_FILE: Final = 64 * 1024 * 1024

Progress = Callable[[int, int], None]


class NodeUpdateError(MaculaError):
    """Some files of the folder could not be updated; none was changed.

    ``failures`` holds ``(path, reason)`` pairs (reasons never contain secrets).
    """

    def __init__(self, message: str, *, failures: list[tuple[str, str]],
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures


@dataclass(frozen=True, slots=True)
class NodeChange:
    """What :func:`add_node` or :func:`remove_node` did.

    ``rules`` are indices into ``creation_rules``; ``files`` are paths relative
    to the folder that were rewritten; ``unchanged`` were already up to date.
    """

    name: str
    recipient: str
    config: str
    rules: tuple[int, ...]
    files: tuple[str, ...]
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One enrolled node: its recipient, the rules that hold it, the files that list it."""

    name: str
    recipient: str
    rules: tuple[int, ...]
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeListing:
    """The nodes of a ``.sops.yaml`` and the SOPS files of the folder."""

    config: str
    nodes: tuple[NodeInfo, ...]
    files: tuple[str, ...]


# -- public entry points ------------------------------------------------------------------


def add_node(
    folder: str | os.PathLike[str],
    name: str,
    recipient: str,
    *,
    identities: Unwrapper,
    config_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> NodeChange:
    """Enroll a node: add its recipient to the rules and re-wrap every file's data key.

    The recipient joins the first key group of each creation rule that matches
    a SOPS file under ``folder``; each such file then gets its data key wrapped
    for its rule's recipients (values unchanged). ``identities`` must open every
    file. ``progress(done, total)`` is called after each file.

    Raises:
        ConfigError: a bad name or public key, a name or key already enrolled,
            no ``.sops.yaml``, a file that matches no rule, or a rule this
            function cannot edit safely (then ``.sops.yaml`` is left as it was).
        NodeUpdateError: some files could not be opened or written; none changed.
    """
    _check_name(name)
    from .keys import age

    text_key = age.parse_recipient(recipient).text
    root = os.fspath(folder)
    cfg = _ConfigText.load(_config_path(root, config_path))
    nodes = cfg.nodes()
    if name in nodes:
        raise ConfigError(f"node {name} is already enrolled ({nodes[name]})",
                          hint=f"remove it first with 'node remove {name}', or pick another name")
    for other, key in nodes.items():
        if _same_key(key, text_key):
            raise ConfigError(f"that public key is already enrolled as node {other}")
    config = load_config(cfg.path)
    files = _sops_files(root)
    if not files:
        raise ConfigError(f"no SOPS files in {root}", hint="add the node when the folder has "
                          "secrets, or add its recipient to .sops.yaml by hand")
    rule_ids = sorted({_rule_index(config, config.rule_for(f)) for f in files})
    expected = [list(map(list, r.key_groups)) for r in config.rules]
    for i in rule_ids:
        groups = expected[i]
        if len(groups) > 1:
            raise ConfigError(
                f"creation rule {i} of {cfg.path} has {len(groups)} key groups (Shamir): "
                "one node key would open only one share",
                hint="add the node to that rule by hand and run updatekeys",
            )
        if not groups:
            raise ConfigError(f"creation rule {i} of {cfg.path} has no age recipients",
                              hint="add an age: list to the rule first")
        if not any(_same_key(k, text_key) for k in groups[0]):
            groups[0].append(text_key)
            cfg.add_recipient(i, text_key, name)
    cfg.set_node(name, text_key)
    with _Staging() as staging:
        new_config = _stage_config(staging, cfg, expected, {**nodes, name: text_key})
        changed, unchanged, failures = [], [], []
        for done, path in enumerate(files, 1):
            try:
                data = _rewrap(path, new_config, identities)
                if data is None:
                    unchanged.append(path)
                else:
                    staging.add(path, data)
                    changed.append(path)
            except (MaculaError, OSError, UnicodeDecodeError) as exc:
                failures.append((path, _reason(exc)))
            if progress is not None:
                progress(done, len(files))
        _fail_if(failures, root, len(files))
        staging.commit(last=cfg.path)
    return NodeChange(name, text_key, cfg.path, tuple(rule_ids),
                      tuple(_rel(p, root) for p in changed),
                      tuple(_rel(p, root) for p in unchanged))


def remove_node(
    folder: str | os.PathLike[str],
    name: str,
    *,
    identities: Unwrapper,
    config_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> NodeChange:
    """Remove a node: take its recipient out of every rule, rotate every file it could read.

    Each SOPS file under ``folder`` whose metadata lists the node's recipient
    gets a new data key, every value re-encrypted, wrapped for its rule's
    remaining recipients (as ``sops rotate``). ``identities`` must open those
    files. Files the node could not read are left alone.

    Raises:
        ConfigError: no node of that name, or a rule would be left with no
            recipients, or ``.sops.yaml`` cannot be edited safely.
        NodeUpdateError: some files could not be opened or written; none changed.
    """
    root = os.fspath(folder)
    cfg = _ConfigText.load(_config_path(root, config_path))
    nodes = cfg.nodes()
    if name not in nodes:
        raise ConfigError(f"no node named {name} in {cfg.path}",
                          hint="'macula-secrets node list' shows the enrolled nodes")
    key = nodes[name]
    config = load_config(cfg.path)
    expected = [list(map(list, r.key_groups)) for r in config.rules]
    rule_ids = []
    for i, groups in enumerate(expected):
        for g, group in enumerate(groups):
            if any(_same_key(k, key) for k in group):
                kept = [k for k in group if not _same_key(k, key)]
                if not kept:
                    raise ConfigError(
                        f"removing node {name} would leave creation rule {i} of {cfg.path} "
                        "without recipients",
                        hint="add another recipient to that rule first",
                    )
                groups[g] = kept
                cfg.remove_recipient(i, g, key)
                if i not in rule_ids:
                    rule_ids.append(i)
    cfg.drop_node(name)
    remaining = {n: k for n, k in nodes.items() if n != name}
    targets = [p for p in _sops_files(root) if _lists(_metadata(p), key)]
    with _Staging() as staging:
        new_config = _stage_config(staging, cfg, expected, remaining)
        failures = []
        for done, path in enumerate(targets, 1):
            try:
                staging.add(path, _rotate(path, new_config, identities))
            except (MaculaError, OSError, UnicodeDecodeError) as exc:
                failures.append((path, _reason(exc)))
            if progress is not None:
                progress(done, len(targets))
        _fail_if(failures, root, len(targets))
        staging.commit(last=cfg.path)
    return NodeChange(name, key, cfg.path, tuple(rule_ids),
                      tuple(_rel(p, root) for p in targets))


def list_nodes(
    folder: str | os.PathLike[str], *, config_path: str | os.PathLike[str] | None = None
) -> NodeListing:
    """The enrolled nodes, with the rules that hold each and the files that list it.

    Reads metadata only (nothing is decrypted). A file "lists" a node when its
    recipient wraps the data key or, with several key groups, one share of it.
    """
    root = os.fspath(folder)
    cfg = _ConfigText.load(_config_path(root, config_path))
    config = load_config(cfg.path)
    files = _sops_files(root) if os.path.isdir(root) else []
    metadata = {}
    for path in files:
        with contextlib.suppress(MaculaError, OSError, UnicodeDecodeError):
            metadata[path] = _metadata(path)
    out = []
    for name, key in cfg.nodes().items():
        rules = tuple(i for i, r in enumerate(config.rules)
                      if any(_same_key(k, key) for g in r.key_groups for k in g))
        listed = tuple(_rel(p, root) for p, md in metadata.items() if _lists(md, key))
        out.append(NodeInfo(name, key, rules, listed))
    return NodeListing(cfg.path, tuple(out), tuple(_rel(p, root) for p in files))


# -- files --------------------------------------------------------------------------------


def _config_path(root: str, given: str | os.PathLike[str] | None) -> str:
    if given is not None:
        return os.fspath(given)
    if not os.path.isdir(root):
        raise ConfigError(f"secrets folder {root} does not exist",
                          hint="pass --dir or set MACULA_SECRETS_DIR")
    found = find_config(root)
    if found is None:
        raise ConfigError(f"no .sops.yaml in {root} or its parents",
                          hint="create one with a creation rule for the folder's files")
    return found


def _sops_files(root: str) -> list[str]:
    """SOPS files under ``root`` (recursive; hidden files and folders skipped)."""
    from .sops.document import read_encrypted
    from .sops.stores import format_for_path, get_store

    if not os.path.isdir(root):
        raise ConfigError(f"secrets folder {root} does not exist",
                          hint="pass --dir or set MACULA_SECRETS_DIR")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            path = os.path.join(dirpath, fn)
            try:
                read_encrypted(_read(path), get_store(format_for_path(path)))
            except (MaculaError, OSError, UnicodeDecodeError, RecursionError):
                continue
            out.append(path)
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise FormatError(f"{path} is larger than {_MAX_FILE} bytes")
    return data


def _metadata(path: str) -> Metadata:
    from .sops.document import read_encrypted
    from .sops.stores import format_for_path, get_store

    return read_encrypted(_read(path), get_store(format_for_path(path)))[1]


def _store(path: str, config: SopsConfig) -> object:
    from .sops.stores import format_for_path, get_store

    fmt = format_for_path(path)
    indent = config.store_indent.get("json_binary" if fmt == "binary" else fmt)
    return get_store(fmt, indent=indent)


def _threshold(metadata: Metadata, rule: CreationRule, groups: list[list[str]]) -> int:
    """The Shamir threshold to keep, as ``updatekeys`` chooses it."""
    if len(groups) > 1:
        wanted = metadata.shamir_threshold or rule.shamir_threshold or len(groups)
        return min(wanted, len(groups))
    return metadata.shamir_threshold if len(metadata.key_groups) == 1 else 0


def _groups_for(path: str, config: SopsConfig) -> tuple[CreationRule, list[list[str]]]:
    rule = config.rule_for(path)
    if rule is None or not rule.key_groups:
        raise ConfigError(f"no age recipients for {path} in {config.path}")
    return rule, rule.key_groups


def _rewrap(path: str, config: SopsConfig, identities: Unwrapper) -> bytes | None:
    """The file with its data key wrapped for its rule's recipients (None: already so)."""
    from .sops.document import read_encrypted
    from .sops.keygroups import unwrap_data_key, wrap_data_key

    store = _store(path, config)
    enc, metadata = read_encrypted(_read(path), store)  # type: ignore[arg-type]
    rule, groups = _groups_for(path, config)
    current = [[k.recipient if isinstance(k, AgeKey) else k.label for k in g]
               for g in metadata.key_groups]
    threshold = _threshold(metadata, rule, groups)
    if current == groups and (len(groups) == 1 or threshold == metadata.shamir_threshold):
        return None
    key = unwrap_data_key(metadata, identities, name=path)
    wrapped, recorded = wrap_data_key(key, groups, threshold=threshold)
    metadata.key_groups = wrapped
    metadata.shamir_threshold = recorded if len(groups) > 1 else threshold
    out: bytes = store.emit_encrypted(enc, metadata.to_branch())  # type: ignore[attr-defined]
    return out


def _rotate(path: str, config: SopsConfig, identities: Unwrapper) -> bytes:
    """The file under a new data key wrapped for its rule's recipients."""
    from .sops.document import decrypt_bytes
    from .sops.stores import format_for_path

    store = _store(path, config)
    doc = decrypt_bytes(_read(path), format=format_for_path(path), unwrapper=identities,
                        name=path, store=store)  # type: ignore[arg-type]
    rule, groups = _groups_for(path, config)
    doc.rekey(groups, threshold=_threshold(doc.metadata, rule, groups), new_data_key=True)
    return doc.encrypt(store)  # type: ignore[arg-type]


def _lists(metadata: Metadata, key: str) -> bool:
    return any(isinstance(k, AgeKey) and _same_key(k.recipient, key)
               for g in metadata.key_groups for k in g)


def _same_key(a: str, b: str) -> bool:
    """Same public key; ssh keys compare without their comment."""
    if a.startswith("ssh-") and b.startswith("ssh-"):
        return a.split()[:2] == b.split()[:2]
    return a.strip() == b.strip()


def _rule_index(config: SopsConfig, rule: CreationRule | None) -> int:
    if rule is None:
        raise ConfigError(f"{config.path} has no creation rules",
                          hint="add a creation rule with the folder's age recipients")
    return next(i for i, r in enumerate(config.rules) if r is rule)


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid node name {name!r}",
            hint="use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _fail_if(failures: list[tuple[str, str]], root: str, total: int) -> None:
    if not failures:
        return
    shown = "; ".join(f"{_rel(p, root)}: {r}" for p, r in failures[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    raise NodeUpdateError(
        f"nothing changed: {len(failures)} of {total} files could not be updated ({shown}{more})",
        failures=[(_rel(p, root), r) for p, r in failures],
        hint="make an identity that opens every file available (SOPS_AGE_KEY_FILE)",
    )


class _Staging:
    """New file contents written next to their targets, then renamed into place together.

    Temporary names follow ``_fs.atomic_write`` (``.NAME.tmpPID.N``), so a killed
    run's leftovers are cleaned up by the next write of that file.
    """

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def add(self, target: str, data: bytes) -> str:
        folder = os.path.dirname(target) or "."
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o644
        tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp{os.getpid()}."
                                   f"node{len(self._items)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._items.append((tmp, target))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def commit(self, *, last: str) -> None:
        """Rename every staged file over its target; ``last`` goes last."""
        items = sorted(self._items, key=lambda item: item[1] == last)
        folders = set()
        for tmp, target in items:
            os.replace(tmp, target)
            folders.add(os.path.dirname(target) or ".")
        self._items = []
        for folder in sorted(folders):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def abort(self) -> None:
        for tmp, _ in self._items:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._items = []


def _stage_config(staging: _Staging, cfg: _ConfigText, expected: list[list[list[str]]],
                  nodes: dict[str, str]) -> SopsConfig:
    """Stage the edited ``.sops.yaml`` and check it says what was intended."""
    tmp = staging.add(cfg.path, cfg.render().encode("utf-8"))
    try:
        new = load_config(tmp)
        got_nodes = _ConfigText.load(tmp).nodes()
    except MaculaError:
        new, got_nodes = None, {}
    if new is None or [r.key_groups for r in new.rules] != expected or got_nodes != nodes:
        raise ConfigError(
            f"cannot edit {cfg.path} safely (its layout is unusual); it was left as it was",
            hint="make the change by hand, then run updatekeys",
        )
    new.path = cfg.path
    return new


# -- .sops.yaml as text -------------------------------------------------------------------


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when that reads back as the same string."""
    from .sops.stores._yaml.resolve import STR, resolve_tag

    if _PLAIN_RE.fullmatch(text) and not text.endswith(" ") and resolve_tag(text) == STR:
        return text
    return json.dumps(text)


def _walk(node: YAMLNode) -> Iterator[YAMLNode]:
    yield node
    for child in node.content:
        yield from _walk(child)


def _lookup(mapping: YAMLNode | None, key: str) -> tuple[YAMLNode, YAMLNode] | None:
    if mapping is None or mapping.kind != P.MAPPING:
        return None
    pairs = mapping.content
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i].kind == P.SCALAR and pairs[i].value == key:
            return pairs[i], pairs[i + 1]
    return None


def _is_block(node: YAMLNode, kind: int) -> bool:
    return node.kind == kind and not node.style & P.FLOW_STYLE and bool(node.content)


class _ConfigText:
    """``.sops.yaml`` source lines plus edits; :meth:`render` applies the edits.

    Edits are recorded against the original line numbers and applied from the
    bottom up, so they never shift each other.
    """

    def __init__(self, path: str, text: str) -> None:
        from .sops.stores._yaml.parser import parse_documents

        self.path = path
        self.text = text
        self.lines = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        try:
            docs = parse_documents(text)
        except MaculaError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
        root = docs[0].content[0] if docs and docs[0].content else None
        self.root = root if root is not None and root.kind == P.MAPPING else None
        self._starts = sorted({n.line for n in _walk(docs[0])}) if docs else []
        self._edits: list[tuple[int, int, list[str]]] = []

    @classmethod
    def load(cls, path: str) -> _ConfigText:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {path} is not UTF-8") from None
        return cls(path, text)

    # -- reading ------------------------------------------------------------------------

    def nodes(self) -> dict[str, str]:
        if _lookup(self.root, NODES_KEY) is None:
            return {}
        from .sops.stores.yaml import load_yaml_data

        data = load_yaml_data(self.text.encode("utf-8"))
        raw = data.get(NODES_KEY) if isinstance(data, dict) else None
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ConfigError(f"{self.path}: '{NODES_KEY}' must map node names to public keys")
        return dict(raw)

    def _age_entry(self, rule: int, group: int) -> tuple[YAMLNode, YAMLNode]:
        rules = _lookup(self.root, "creation_rules")
        if rules is None or rules[1].kind != P.SEQUENCE or rule >= len(rules[1].content):
            raise ConfigError(f"cannot find creation rule {rule} in {self.path}")
        container: YAMLNode | None = rules[1].content[rule]
        groups = _lookup(container, "key_groups")
        if groups is not None and groups[1].kind == P.SEQUENCE and groups[1].content:
            container = groups[1].content[group] if group < len(groups[1].content) else None
        entry = _lookup(container, "age")
        if entry is None or entry[1].kind == P.ALIAS or any(
            n.kind == P.ALIAS for n in entry[1].content
        ):
            raise ConfigError(
                f"cannot edit the age keys of creation rule {rule} in {self.path} "
                "(absent, or written with YAML aliases)",
                hint="make the change by hand, then run updatekeys",
            )
        return entry

    def _entry_lines(self, key: YAMLNode, value: YAMLNode) -> tuple[int, int]:
        """0-based ``[first, end)`` lines of a ``key: value`` entry (trailing comments excluded)."""
        last = max(n.line for n in _walk(value))
        later = [s for s in self._starts if s > last]
        end = (later[0] - 1) if later else len(self.lines)
        indent = key.column - 1
        block_scalar = value.kind == P.SCALAR and value.style & (P.LITERAL_STYLE | P.FOLDED_STYLE)
        while end > key.line:
            line = self.lines[end - 1]
            stripped = line.strip()
            depth = len(line) - len(line.lstrip(" "))
            if not stripped or (stripped.startswith("#") and
                                (not block_scalar or depth <= indent)):
                end -= 1
                continue
            break
        return key.line - 1, end

    # -- editing ------------------------------------------------------------------------

    def _replace_entry(self, key: YAMLNode, value: YAMLNode, body: list[str],
                       *, flow_empty: str) -> None:
        """Rewrite ``key: value`` as a block (``body``: lines after the key line)."""
        first, end = self._entry_lines(key, value)
        head = self.lines[first][: key.column - 1] + f"{key.value}:"
        comments = " ".join(n.line_comment for n in (key, *_walk(value))
                            if n.line_comment and n.line == key.line)
        if not body:
            head += f" {flow_empty}"
        if comments:
            head += f"  {comments}"
        self._edits.append((first, end, [head + "\n", *body]))

    def add_recipient(self, rule: int, recipient: str, name: str) -> None:
        key, value = self._age_entry(rule, 0)
        line = f"{_scalar(recipient)}  # node: {name}\n"
        if _is_block(value, P.SEQUENCE):
            last = value.content[-1]
            match = re.match(r"\s*-\s+", self.lines[last.line - 1])
            if match is None:
                raise ConfigError(f"cannot edit the age keys of creation rule {rule} in "
                                  f"{self.path}", hint="make the change by hand")
            self._edits.append((last.line, last.line, [match.group(0) + line]))
            return
        items = self._recipients(value)
        indent = " " * (key.column + 1)
        body = [f"{indent}- {_scalar(r)}\n" for r in items] + [f"{indent}- {line}"]
        self._replace_entry(key, value, body, flow_empty="[]")

    def remove_recipient(self, rule: int, group: int, recipient: str) -> None:
        key, value = self._age_entry(rule, group)
        if _is_block(value, P.SEQUENCE):
            for item in value.content:
                if item.kind == P.SCALAR and _same_key(item.value, recipient):
                    i = item.line - 1
                    if not re.match(r"\s*-\s", self.lines[i]):
                        raise ConfigError(f"cannot edit the age keys of creation rule {rule} "
                                          f"in {self.path}", hint="make the change by hand")
                    self._edits.append((i, i + 1, []))
            return
        items = [r for r in self._recipients(value) if not _same_key(r, recipient)]
        indent = " " * (key.column + 1)
        self._replace_entry(key, value, [f"{indent}- {_scalar(r)}\n" for r in items],
                            flow_empty="[]")

    def _recipients(self, value: YAMLNode) -> list[str]:
        if value.kind == P.SCALAR:
            if value.tag.endswith("null"):
                return []
            return [k.strip() for k in value.value.split(",") if k.strip()]
        out: list[str] = []
        for item in value.content:
            out.extend(k.strip() for k in item.value.split(",") if k.strip())
        return out

    def set_node(self, name: str, recipient: str) -> None:
        entry = f"{_scalar(name)}: {_scalar(recipient)}\n"
        found = _lookup(self.root, NODES_KEY)
        if found is None:
            if self.root is None and self.lines:
                raise ConfigError(f"config {self.path} is not a mapping")
            gap = ["\n"] if self.lines and self.lines[-1].strip() else []
            self._edits.append((len(self.lines), len(self.lines), [
                *gap, "# Enrolled nodes (macula-secrets node add/remove); sops ignores this.\n",
                f"{NODES_KEY}:\n", f"  {entry}"]))
            return
        key, value = found
        if _is_block(value, P.MAPPING):
            last = value.content[-1]
            _, end = self._entry_lines(value.content[-2], last)
            indent = " " * (value.content[0].column - 1)
            self._edits.append((end, end, [indent + entry]))
            return
        body = [f"  {_scalar(k)}: {_scalar(v)}\n" for k, v in self.nodes().items()]
        self._replace_entry(key, value, [*body, f"  {entry}"], flow_empty="{}")

    def drop_node(self, name: str) -> None:
        found = _lookup(self.root, NODES_KEY)
        if found is None:
            return
        key, value = found
        if _is_block(value, P.MAPPING) and len(value.content) > 2:
            pairs = value.content
            for i in range(0, len(pairs) - 1, 2):
                if pairs[i].kind == P.SCALAR and pairs[i].value == name:
                    first, end = self._entry_lines(pairs[i], pairs[i + 1])
                    self._edits.append((first, end, []))
            return
        rest = {k: v for k, v in self.nodes().items() if k != name}
        body = [f"  {_scalar(k)}: {_scalar(v)}\n" for k, v in rest.items()]
        self._replace_entry(key, value, body, flow_empty="{}")

    def render(self) -> str:
        lines = list(self.lines)
        # Bottom up; of two insertions at one line, the later-recorded is applied
        # first so that the earlier one ends up above it.
        order = sorted(range(len(self._edits)), key=lambda i: (*self._edits[i][:2], i),
                       reverse=True)
        edits = [self._edits[i] for i in order]
        for (start, end, new), later in zip(edits, [None, *edits], strict=False):
            if later is not None and end > later[0]:
                raise ConfigError(f"cannot edit {self.path} safely (overlapping changes)",
                                  hint="make the change by hand, then run updatekeys")
            lines[start:end] = new
        return "".join(lines)
