"""The YAML store: YAML text <-> SOPS trees, as sops 3.11's YAML store does it.

Parsing and printing follow go-yaml v3 (see ``_yaml``); this module does what
sops's ``stores/yaml`` adds on top: comments become tree items in the order
sops puts them, the top level of every document must be a mapping,
duplicate keys in the first document are refused, anchors are expanded and
merge keys are kept as literal ``<<`` keys, the metadata is a top-level
``sops`` key in every document.
"""

from __future__ import annotations

from typing import Final

from ...errors import FormatError, LimitError
from ..tree import METADATA_KEY, Branch, Comment
from ._yaml import nodes as P
from ._yaml.nodes import Node
from ._yaml.resolve import BINARY, NULL, STR, decode_binary, resolve, short_tag
from ._yaml.scalars import scalar_node
from ._yaml.text import decode_text

# The full go-yaml reader and writer (._yaml.parser, ._yaml.emitter) are
# imported only when the fast paths decline a document: they cost start-up
# time that most files never need.

__all__ = ["YAMLStore", "load_yaml_data", "make_store"]

#: Aliases may repeat a subtree; cap the size of what they expand to.
MAX_EXPANDED_NODES: Final = 1_000_000
DEFAULT_INDENT: Final = 4
_MAX_DEPTH: Final = 100  # as the parser's MAX_DEPTH

_QUOTED: Final = P.SINGLE_QUOTED_STYLE | P.DOUBLE_QUOTED_STYLE | P.LITERAL_STYLE | P.FOLDED_STYLE


class YAMLStore:
    """sops's YAML store. ``indent`` is the output indentation (default 4)."""

    name: Final = "yaml"

    def __init__(self, indent: int | None = None) -> None:
        if indent is not None and indent < 0:
            raise FormatError("yaml: negative indentation not accepted")
        self.indent = indent or DEFAULT_INDENT

    # -- reading ----------------------------------------------------------------

    def load_plain(self, data: bytes) -> list[Branch]:
        fast = self._fast(data)
        if fast is not None:
            return fast
        docs = self._parse(data)
        if docs:
            _check_first_document(docs[0])
        reader = _TreeReader(check_aliasing=True)
        return [reader.document(d) for d in docs]

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        branches = self._fast(data)
        if branches is None:
            docs = self._parse(data)
            reader = _TreeReader()
            branches = [reader.document(d) for d in docs]
        if not branches:
            raise FormatError("sops metadata not found")
        metadata = branches[0].get(METADATA_KEY)
        if metadata is None:
            raise FormatError("sops metadata not found")
        if not isinstance(metadata, Branch):
            raise FormatError("sops metadata is not a mapping")
        for branch in branches:
            branch[:] = [item for item in branch if item[0] != METADATA_KEY]
        return branches, metadata

    def has_metadata(self, branches: list[Branch]) -> bool:
        return bool(branches) and branches[0].index_of(METADATA_KEY) >= 0

    @staticmethod
    def _fast(data: bytes) -> list[Branch] | None:
        """The line-based reader for plain block YAML, or None to use the full one."""
        from ._yaml.fast import try_parse

        result = try_parse(decode_text(data))
        if result is None or result[1]:
            return None  # (duplicate keys: let the full reader name them)
        return [result[0]]

    @staticmethod
    def _parse(data: bytes) -> list[Node]:
        from ._yaml.parser import parse_documents

        text = decode_text(data)
        try:
            return parse_documents(text)
        except RecursionError:
            raise LimitError("yaml: document nests too deeply") from None

    # -- writing -------------------------------------------------------------------

    def emit_plain(self, branches: list[Branch]) -> bytes:
        from ._yaml.fastemit import fast_emit

        fast = fast_emit(branches, indent=self.indent)
        if fast is not None:
            return fast.encode("utf-8")
        from ._yaml.emitter import Encoder

        enc = Encoder(indent=self.indent)
        for branch in branches:
            enc.encode_document(_document(_mapping(branch)))
        return enc.close().encode("utf-8")

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        from ._yaml.fastemit import fast_emit

        fulls = []
        for branch in branches:
            full = Branch(branch)
            full.append((METADATA_KEY, metadata))
            fulls.append(full)
        fast = fast_emit(fulls, indent=self.indent)
        if fast is not None:
            return fast.encode("utf-8")
        from ._yaml.emitter import Encoder

        enc = Encoder(indent=self.indent)
        for full in fulls:
            enc.encode_document(_document(_mapping(full)))
        return enc.close().encode("utf-8")

    def emit_plain_full(self, branches: list[Branch]) -> bytes:
        """The event-driven emitter only (tests compare it with the fast path)."""
        from ._yaml.emitter import Encoder

        enc = Encoder(indent=self.indent)
        for branch in branches:
            enc.encode_document(_document(_mapping(branch)))
        return enc.close().encode("utf-8")

    def emit_value(self, value: object) -> bytes:
        # sops uses yaml.Marshal here, which always indents by 4.
        from ._yaml.emitter import Encoder

        enc = Encoder(indent=DEFAULT_INDENT)
        enc.encode_document(_document(_value(value)))
        return enc.close().encode("utf-8")


def make_store(indent: int | None = None) -> YAMLStore:
    return YAMLStore(indent)


# -- nodes -> tree --------------------------------------------------------------------


def _comment_lines(text: str, out: list[object], *, mapping: bool) -> None:
    if not text:
        return
    for line in text.split("\n"):
        if line:
            c = Comment(line[1:])
            if mapping:
                out.append((c, None))
            else:
                out.append(c)


def _allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's limit on the share of decoded nodes that come from aliases."""
    low, high = 400_000, 4_000_000
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * ((decoded - low) / (high - low))


class _TreeReader:
    """Turns go-yaml nodes into sops tree items, placing comments as sops does.

    Every node produced is counted, and those produced under an alias
    separately, so that an alias bomb ("billion laughs") stops early: with
    ``check_aliasing`` as go-yaml's decoder does when sops decodes a plaintext
    document (more than 99% of the nodes from aliases is refused), and always
    at :data:`MAX_EXPANDED_NODES`.
    """

    def __init__(self, *, check_aliasing: bool = False) -> None:
        self.decoded = 0
        self.aliased = 0
        self.alias_depth = 0
        self.check_aliasing = check_aliasing
        self.expanding: set[int] = set()  # alias targets being expanded now

    def document(self, doc: Node) -> Branch:
        branch = Branch()
        self._into_branch(doc, branch, handled=False)
        self.check_aliasing = False  # go-yaml checks the first document only
        return branch

    def _count(self) -> None:
        self.decoded += 1
        if self.alias_depth:
            self.aliased += 1
        if self.decoded > MAX_EXPANDED_NODES:
            raise LimitError(f"yaml: the document expands to more than {MAX_EXPANDED_NODES} nodes")
        if (
            self.check_aliasing
            and self.aliased > 100
            and self.decoded > 1000
            and self.aliased / self.decoded > _allowed_alias_ratio(self.decoded)
        ):
            raise LimitError("yaml: document contains excessive aliasing")

    def _into_branch(self, node: Node, branch: Branch, *, handled: bool) -> Branch:
        self._count()
        if not handled:
            _comment_lines(node.head_comment, branch, mapping=True)  # type: ignore[arg-type]
            _comment_lines(node.line_comment, branch, mapping=True)  # type: ignore[arg-type]
        kind = node.kind
        if kind == P.DOCUMENT:
            for child in node.content:
                self._into_branch(child, branch, handled=False)
        elif kind == P.SEQUENCE:
            raise FormatError("yaml: documents that are sequences are not supported")
        elif kind == P.MAPPING:
            content = node.content
            for i in range(0, len(content) - 1, 2):
                k = content[i]
                v = content[i + 1]
                _comment_lines(k.head_comment, branch, mapping=True)  # type: ignore[arg-type]
                _comment_lines(k.line_comment, branch, mapping=True)  # type: ignore[arg-type]
                scalar_like = v.kind in (P.SCALAR, P.ALIAS)
                if scalar_like:
                    _comment_lines(v.head_comment, branch, mapping=True)  # type: ignore[arg-type]
                    _comment_lines(v.line_comment, branch, mapping=True)  # type: ignore[arg-type]
                key = self._value(k, handled=True)
                value = self._value(v, handled=scalar_like)
                branch.append((key, value))
                if scalar_like:
                    _comment_lines(v.foot_comment, branch, mapping=True)  # type: ignore[arg-type]
                _comment_lines(k.foot_comment, branch, mapping=True)  # type: ignore[arg-type]
        elif kind == P.SCALAR:
            if short_tag(node.tag) != NULL:
                raise FormatError("yaml: documents that are values are not supported")
        elif kind == P.ALIAS:
            self.alias_depth += 1
            self._into_branch(_target(node), branch, handled=False)
            self.alias_depth -= 1
        if not handled:
            _comment_lines(node.foot_comment, branch, mapping=True)  # type: ignore[arg-type]
        return branch

    def _value(self, node: Node, *, handled: bool) -> object:
        kind = node.kind
        if kind != P.MAPPING:
            self._count()  # mappings count themselves in _into_branch
        if kind == P.SCALAR:
            return decode_scalar(node)
        if kind == P.MAPPING:
            return self._into_branch(node, Branch(), handled=handled)
        if kind == P.SEQUENCE:
            out: list[object] = []
            if not handled:
                _comment_lines(node.head_comment, out, mapping=False)
                _comment_lines(node.line_comment, out, mapping=False)
            for item in node.content:
                _comment_lines(item.head_comment, out, mapping=False)
                _comment_lines(item.line_comment, out, mapping=False)
                out.append(self._value(item, handled=True))
                _comment_lines(item.foot_comment, out, mapping=False)
            if not handled:
                _comment_lines(node.foot_comment, out, mapping=False)
            return out
        if kind == P.ALIAS:
            target = _target(node)
            if id(target) in self.expanding:
                raise FormatError(f"yaml: line {node.line}: an alias refers to itself")
            self.expanding.add(id(target))
            self.alias_depth += 1
            try:
                return self._value(target, handled=False)
            finally:
                self.alias_depth -= 1
                self.expanding.discard(id(target))
        raise FormatError("yaml: unexpected node")


def _target(alias: Node) -> Node:
    """The node an alias names (the parser guarantees there is one)."""
    if alias.alias is None:
        raise FormatError(f"yaml: line {alias.line}: unknown anchor referenced")
    return alias.alias


def decode_scalar(node: Node) -> object:
    """A scalar node's value as go-yaml decodes it into an ``interface{}``."""
    tag = node.tag
    stag = short_tag(tag)
    if stag == STR or ((not tag or tag == "!") and node.style & _QUOTED):
        return node.value
    if stag == NULL:
        return None
    rtag, value = resolve(tag, node.value)
    if rtag == BINARY:
        return decode_binary(node.value)
    return value


def _check_first_document(doc: Node) -> None:
    """What sops's decode into ``map[string]interface{}`` checks before encrypting."""
    root = doc.content[0] if doc.content else None
    while root is not None and root.kind == P.ALIAS:
        root = root.alias
    if root is None:
        return
    if root.kind == P.SEQUENCE:
        raise FormatError(
            "yaml: cannot unmarshal !!seq into a mapping (the top level must be a map)"
        )
    if root.kind == P.SCALAR:
        if decode_scalar(root) is not None:
            raise FormatError(
                f"yaml: cannot unmarshal {short_tag(root.tag)} into a mapping "
                "(the top level must be a map)"
            )
        return
    _check_unique_keys(root, 0)


def _check_unique_keys(node: Node, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise LimitError(f"yaml: nesting deeper than {_MAX_DEPTH} levels")
    # Aliases are not followed: the node they name is checked where it is
    # defined, and following them would let an alias bomb run for minutes.
    if node.kind == P.MAPPING:
        content = node.content
        seen: dict[tuple[int, str], int] = {}
        for i in range(0, len(content), 2):
            k = content[i]
            if k.kind != P.ALIAS:
                ident = (k.kind, k.value)
                if ident in seen:
                    raise FormatError(
                        f'yaml: line {k.line}: mapping key "{k.value}" already defined '
                        f"at line {seen[ident]}"
                    )
                seen[ident] = k.line
        for i in range(0, len(content) - 1, 2):
            if _is_merge(content[i]):
                _check_merge_value(content[i + 1])
        for child in content[1::2]:
            _check_unique_keys(child, depth + 1)
    elif node.kind == P.SEQUENCE:
        for child in node.content:
            _check_unique_keys(child, depth + 1)


def _is_merge(key: Node) -> bool:
    """A ``<<`` merge key as go-yaml recognises it (plain, or tagged ``!!merge``)."""
    return key.kind == P.SCALAR and key.value == "<<" and (
        key.tag in ("", "!") or short_tag(key.tag) == "!!merge"
    )


def _check_merge_value(value: Node) -> None:
    """go-yaml's decoder refuses a merge whose value is not a map or a list of maps."""
    def is_map(n: Node) -> bool:
        if n.kind == P.ALIAS:
            return n.alias is None or n.alias.kind == P.MAPPING
        return n.kind == P.MAPPING

    ok = is_map(value) or (
        value.kind == P.SEQUENCE and all(is_map(item) for item in value.content)
    )
    if not ok:
        raise FormatError("yaml: map merge requires map or sequence of maps as the value")


# -- tree -> nodes ---------------------------------------------------------------------


def _add_head(node: Node, comments: list[str]) -> None:
    if comments:
        text = "#" + "\n#".join(comments)
        node.head_comment = text + "\n" + node.head_comment if node.head_comment else text


def _add_foot(node: Node, comments: list[str]) -> None:
    if comments:
        text = "#" + "\n#".join(comments)
        node.foot_comment = node.foot_comment + "\n" + text if node.foot_comment else text


def _document(root: Node) -> Node:
    doc = Node(P.DOCUMENT)
    doc.content.append(root)
    return doc


def _mapping(branch: Branch) -> Node:
    mapping = Node(P.MAPPING, "!!map")
    comments: list[str] = []
    beginning = True
    content = mapping.content
    for k, v in branch:
        if k.__class__ is Comment:
            comments.append(k.value)
            continue
        if beginning:
            _add_head(mapping, comments)
            comments = []
            beginning = False
        key_node = scalar_node(k)
        if comments:
            _add_head(key_node, comments)
            comments = []
        content.append(key_node)
        content.append(_value(v))
    if comments:
        if beginning:
            _add_head(mapping, comments)
        else:
            _add_foot(content[-2], comments)
    return mapping


def _sequence(items: list[object]) -> Node:
    seq = Node(P.SEQUENCE, "!!seq")
    comments: list[str] = []
    beginning = True
    content = seq.content
    for item in items:
        if item.__class__ is Comment:
            comments.append(item.value)
            continue
        if beginning:
            _add_head(seq, comments)
            comments = []
            beginning = False
        node = _value(item)
        if comments:
            _add_head(node, comments)
            comments = []
        content.append(node)
    if comments:
        if beginning:
            _add_head(seq, comments)
        else:
            _add_foot(content[-1], comments)
    return seq


def _value(v: object) -> Node:
    if isinstance(v, Branch):
        return _mapping(v)
    if isinstance(v, list):
        return _sequence(v)
    return scalar_node(v)


def load_yaml_data(data: bytes) -> object:
    """Parse the first YAML document into plain ``dict``/``list``/scalars.

    For small configuration files (``.sops.yaml``); typing follows go-yaml.
    """
    docs = YAMLStore._parse(data)
    if not docs or not docs[0].content:
        return None
    return _plain(docs[0].content[0], 0)


def _plain(node: Node, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise LimitError(f"yaml: nesting deeper than {_MAX_DEPTH} levels")
    if node.kind == P.ALIAS:
        return _plain(_target(node), depth + 1)
    if node.kind == P.MAPPING:
        out: dict[str, object] = {}
        content = node.content
        for i in range(0, len(content) - 1, 2):
            key = _plain(content[i], depth + 1)
            out[str(key)] = _plain(content[i + 1], depth + 1)
        return out
    if node.kind == P.SEQUENCE:
        return [_plain(c, depth + 1) for c in node.content]
    return decode_scalar(node)
