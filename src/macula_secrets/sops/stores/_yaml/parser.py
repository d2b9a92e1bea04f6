"""YAML parser: tokens -> events -> nodes with comments, as go-yaml v3 builds them.

The event grammar is YAML's (``stream ::= STREAM-START document* STREAM-END``
and so on). Comments ride on events: each event takes the head, line and
foot comments the scanner has unfolded by the time the event is made, and
the node builder moves some of them (a mapping's foot comment goes to its
last key, a dedented key's foot comment to the key before it), which is
where go-yaml, and therefore sops, puts them.

See ``scanner.py`` for marks and the licence note.
"""

from __future__ import annotations

from typing import Final

from ....errors import LimitError
from . import scanner as T
from .nodes import (  # re-exported: the parser's node model
    ALIAS,
    DOCUMENT,
    DOUBLE_QUOTED_STYLE,
    FLOW_STYLE,
    FOLDED_STYLE,
    LITERAL_STYLE,
    MAPPING,
    SCALAR,
    SEQUENCE,
    SINGLE_QUOTED_STYLE,
    TAGGED_STYLE,
    Node,
)
from .resolve import resolve_tag, short_tag
from .scanner import Mark, Scanner, Token

__all__ = [
    "ALIAS", "DOCUMENT", "DOUBLE_QUOTED_STYLE", "FLOW_STYLE", "FOLDED_STYLE", "LITERAL_STYLE",
    "MAPPING", "MAX_DEPTH", "SCALAR", "SEQUENCE", "SINGLE_QUOTED_STYLE", "TAGGED_STYLE",
    "Node", "Parser", "parse_documents",
]

# Event types.
STREAM_START_EVENT: Final = 1
STREAM_END_EVENT: Final = 2
DOCUMENT_START_EVENT: Final = 3
DOCUMENT_END_EVENT: Final = 4
ALIAS_EVENT: Final = 5
SCALAR_EVENT: Final = 6
SEQUENCE_START_EVENT: Final = 7
SEQUENCE_END_EVENT: Final = 8
MAPPING_START_EVENT: Final = 9
MAPPING_END_EVENT: Final = 10

#: Limits against hostile input.
MAX_DEPTH: Final = 100
MAX_NODES: Final = 5_000_000

_DEFAULT_TAG_DIRECTIVES: Final = (("!", "!"), ("!!", "tag:yaml.org,2002:"))


class Event:
    __slots__ = (
        "anchor",
        "end",
        "foot_comment",
        "head_comment",
        "implicit",
        "line_comment",
        "quoted_implicit",
        "start",
        "style",
        "tag",
        "type",
        "value",
    )

    def __init__(self, type_: int, start: Mark, end: Mark) -> None:
        self.type = type_
        self.start = start
        self.end = end
        self.anchor = ""
        self.tag = ""
        self.value = ""
        self.implicit = False
        self.quoted_implicit = False
        self.style = 0
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""


class Parser(Scanner):
    """Turns YAML text into a list of document nodes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.state = self._parse_stream_start
        self.states: list[object] = []
        self.marks: list[Mark] = []
        self.tag_directives: list[tuple[str, str]] = []
        self.event: Event | None = None
        self.anchors: dict[str, Node] = {}
        self.depth = 0
        self.node_count = 0

    # -- events -------------------------------------------------------------------

    def _next_event(self) -> Event:
        state = self.state
        event: Event = state()
        return event

    def _pop_state(self) -> None:
        self.state = self.states.pop()  # type: ignore[assignment]

    def _set_event_comments(self, event: Event) -> None:
        event.head_comment = self.head_comment
        event.line_comment = self.line_comment
        event.foot_comment = self.foot_comment
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""
        self.tail_comment = ""
        self.stem_comment = None

    def _parse_stream_start(self) -> Event:
        token = self.peek_token()
        if token.type != T.STREAM_START:
            raise self._error("did not find expected <stream-start>", token.start)
        self.state = self._parse_implicit_document_start
        self.skip_token()
        return Event(STREAM_START_EVENT, token.start, token.end)

    def _parse_implicit_document_start(self) -> Event:
        return self._parse_document_start(implicit=True)

    def _parse_explicit_document_start(self) -> Event:
        return self._parse_document_start(implicit=False)

    def _parse_document_start(self, *, implicit: bool) -> Event:
        token = self.peek_token()
        if not implicit:
            while token.type == T.DOCUMENT_END:
                self.skip_token()
                token = self.peek_token()
        if implicit and token.type not in (
            T.VERSION_DIRECTIVE, T.TAG_DIRECTIVE, T.DOCUMENT_START, T.STREAM_END
        ):
            self._process_directives()
            self.states.append(self._parse_document_end)
            self.state = self._parse_block_node
            head = ""
            if self.head_comment:
                # Split the header comment at its last empty line: the part
                # before goes to the document, the rest to the first node.
                hc = self.head_comment
                for i in range(len(hc) - 1, 0, -1):
                    if hc[i] == "\n":
                        if i == len(hc) - 1:
                            head = hc[:i]
                            self.head_comment = hc[i + 1:]
                            break
                        if hc[i - 1] == "\n":
                            head = hc[:i - 1]
                            self.head_comment = hc[i + 1:]
                            break
            event = Event(DOCUMENT_START_EVENT, token.start, token.end)
            event.head_comment = head
            event.implicit = True
            return event
        if token.type != T.STREAM_END:
            start = token.start
            self._process_directives()
            token = self.peek_token()
            if token.type != T.DOCUMENT_START:
                raise self._error("did not find expected <document start>", token.start)
            self.states.append(self._parse_document_end)
            self.state = self._parse_document_content
            event = Event(DOCUMENT_START_EVENT, start, token.end)
            self.skip_token()
            return event
        self.state = self._parse_end
        self.skip_token()
        return Event(STREAM_END_EVENT, token.start, token.end)

    def _parse_end(self) -> Event:
        raise self._error("parser called after the end of the stream")

    def _parse_document_content(self) -> Event:
        token = self.peek_token()
        if token.type in (
            T.VERSION_DIRECTIVE, T.TAG_DIRECTIVE, T.DOCUMENT_START, T.DOCUMENT_END, T.STREAM_END
        ):
            self._pop_state()
            return self._empty_scalar(token.start)
        return self._parse_node(block=True, indentless_sequence=False)

    def _parse_document_end(self) -> Event:
        token = self.peek_token()
        start = end = token.start
        implicit = True
        if token.type == T.DOCUMENT_END:
            end = token.end
            self.skip_token()
            implicit = False
        self.tag_directives = []
        self.state = self._parse_explicit_document_start
        event = Event(DOCUMENT_END_EVENT, start, end)
        event.implicit = implicit
        self._set_event_comments(event)
        if event.head_comment and not event.foot_comment:
            event.foot_comment = event.head_comment
            event.head_comment = ""
        return event

    def _parse_block_node(self) -> Event:
        return self._parse_node(block=True, indentless_sequence=False)

    def _parse_block_node_or_indentless_sequence(self) -> Event:
        return self._parse_node(block=True, indentless_sequence=True)

    def _parse_flow_node(self) -> Event:
        return self._parse_node(block=False, indentless_sequence=False)

    def _parse_node(self, *, block: bool, indentless_sequence: bool) -> Event:
        token = self.peek_token()
        if token.type == T.ALIAS:
            self._pop_state()
            event = Event(ALIAS_EVENT, token.start, token.end)
            event.anchor = token.value
            self._set_event_comments(event)
            self.skip_token()
            return event

        start = end = token.start
        tag_token = False
        handle = suffix = anchor = ""
        tag_mark = start
        if token.type == T.ANCHOR:
            anchor = token.value
            start, end = token.start, token.end
            self.skip_token()
            token = self.peek_token()
            if token.type == T.TAG:
                tag_token = True
                handle, suffix, tag_mark, end = token.value, token.suffix, token.start, token.end
                self.skip_token()
                token = self.peek_token()
        elif token.type == T.TAG:
            tag_token = True
            handle, suffix = token.value, token.suffix
            start = tag_mark = token.start
            end = token.end
            self.skip_token()
            token = self.peek_token()
            if token.type == T.ANCHOR:
                anchor = token.value
                end = token.end
                self.skip_token()
                token = self.peek_token()

        tag = ""
        if tag_token:
            if not handle:
                tag = suffix
            else:
                for h, prefix in self.tag_directives:
                    if h == handle:
                        tag = prefix + suffix
                        break
                if not tag:
                    raise self._error("while parsing a node: found undefined tag handle", tag_mark)

        implicit = not tag
        if indentless_sequence and token.type == T.BLOCK_ENTRY:
            end = token.end
            self.state = self._parse_indentless_sequence_entry
            event = Event(SEQUENCE_START_EVENT, start, end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            return event
        if token.type == T.SCALAR:
            end = token.end
            plain_implicit = quoted_implicit = False
            if (not tag and token.style == T.PLAIN) or tag == "!":
                plain_implicit = True
            elif not tag:
                quoted_implicit = True
            self._pop_state()
            event = Event(SCALAR_EVENT, start, end)
            event.anchor, event.tag, event.value = anchor, tag, token.value
            event.implicit, event.quoted_implicit = plain_implicit, quoted_implicit
            event.style = token.style
            self._set_event_comments(event)
            self.skip_token()
            return event
        if token.type == T.FLOW_SEQUENCE_START:
            self.state = self._parse_flow_sequence_first_entry
            event = Event(SEQUENCE_START_EVENT, start, token.end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            event.style = FLOW_STYLE
            self._set_event_comments(event)
            return event
        if token.type == T.FLOW_MAPPING_START:
            self.state = self._parse_flow_mapping_first_key
            event = Event(MAPPING_START_EVENT, start, token.end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            event.style = FLOW_STYLE
            self._set_event_comments(event)
            return event
        if block and token.type == T.BLOCK_SEQUENCE_START:
            self.state = self._parse_block_sequence_first_entry
            event = Event(SEQUENCE_START_EVENT, start, token.end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            if self.stem_comment is not None:
                event.head_comment = self.stem_comment
                self.stem_comment = None
            return event
        if block and token.type == T.BLOCK_MAPPING_START:
            self.state = self._parse_block_mapping_first_key
            event = Event(MAPPING_START_EVENT, start, token.end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            if self.stem_comment is not None:
                event.head_comment = self.stem_comment
                self.stem_comment = None
            return event
        if anchor or tag:
            self._pop_state()
            event = Event(SCALAR_EVENT, start, end)
            event.anchor, event.tag, event.implicit = anchor, tag, implicit
            event.style = T.PLAIN
            return event
        context = "while parsing a block node" if block else "while parsing a flow node"
        raise self._error(f"{context}: did not find expected node content", token.start)

    def _parse_block_sequence_first_entry(self) -> Event:
        token = self.peek_token()
        self.marks.append(token.start)
        self.skip_token()
        return self._parse_block_sequence_entry()

    def _parse_block_sequence_entry(self) -> Event:
        token = self.peek_token()
        if token.type == T.BLOCK_ENTRY:
            mark = token.end
            prior_head_len = len(self.head_comment)
            self.skip_token()
            self._split_stem_comment(prior_head_len)
            token = self.peek_token()
            if token.type not in (T.BLOCK_ENTRY, T.BLOCK_END):
                self.states.append(self._parse_block_sequence_entry)
                return self._parse_node(block=True, indentless_sequence=False)
            self.state = self._parse_block_sequence_entry
            return self._empty_scalar(mark)
        if token.type == T.BLOCK_END:
            self._pop_state()
            self.marks.pop()
            self.skip_token()
            return Event(SEQUENCE_END_EVENT, token.start, token.end)
        raise self._error(
            "while parsing a block collection: did not find expected '-' indicator", token.start
        )

    def _parse_indentless_sequence_entry(self) -> Event:
        token = self.peek_token()
        if token.type == T.BLOCK_ENTRY:
            mark = token.end
            prior_head_len = len(self.head_comment)
            self.skip_token()
            self._split_stem_comment(prior_head_len)
            token = self.peek_token()
            if token.type not in (T.BLOCK_ENTRY, T.KEY, T.VALUE, T.BLOCK_END):
                self.states.append(self._parse_indentless_sequence_entry)
                return self._parse_node(block=True, indentless_sequence=False)
            self.state = self._parse_indentless_sequence_entry
            return self._empty_scalar(mark)
        self._pop_state()
        return Event(SEQUENCE_END_EVENT, token.start, token.start)

    def _split_stem_comment(self, stem_len: int) -> None:
        """A head comment above a collection under "- " belongs to that collection."""
        if stem_len == 0:
            return
        token = self.peek_token()
        if token.type not in (T.BLOCK_SEQUENCE_START, T.BLOCK_MAPPING_START):
            return
        self.stem_comment = self.head_comment[:stem_len]
        if len(self.head_comment) == stem_len:
            self.head_comment = ""
        else:
            self.head_comment = self.head_comment[stem_len + 1:]

    def _parse_block_mapping_first_key(self) -> Event:
        token = self.peek_token()
        self.marks.append(token.start)
        self.skip_token()
        return self._parse_block_mapping_key()

    def _parse_block_mapping_key(self) -> Event:
        token = self.peek_token()
        if token.type == T.KEY:
            mark = token.end
            self.skip_token()
            token = self.peek_token()
            if token.type not in (T.KEY, T.VALUE, T.BLOCK_END):
                self.states.append(self._parse_block_mapping_value)
                return self._parse_node(block=True, indentless_sequence=True)
            self.state = self._parse_block_mapping_value
            return self._empty_scalar(mark)
        if token.type == T.BLOCK_END:
            self._pop_state()
            self.marks.pop()
            event = Event(MAPPING_END_EVENT, token.start, token.end)
            self._set_event_comments(event)
            self.skip_token()
            return event
        raise self._error("while parsing a block mapping: did not find expected key", token.start)

    def _parse_block_mapping_value(self) -> Event:
        token = self.peek_token()
        if token.type == T.VALUE:
            mark = token.end
            self.skip_token()
            token = self.peek_token()
            if token.type not in (T.KEY, T.VALUE, T.BLOCK_END):
                self.states.append(self._parse_block_mapping_key)
                return self._parse_node(block=True, indentless_sequence=True)
            self.state = self._parse_block_mapping_key
            return self._empty_scalar(mark)
        self.state = self._parse_block_mapping_key
        return self._empty_scalar(token.start)

    def _parse_flow_sequence_first_entry(self) -> Event:
        token = self.peek_token()
        self.marks.append(token.start)
        self.skip_token()
        return self._parse_flow_sequence_entry(first=True)

    def _parse_flow_sequence_next_entry(self) -> Event:
        return self._parse_flow_sequence_entry(first=False)

    def _parse_flow_sequence_entry(self, *, first: bool) -> Event:
        token = self.peek_token()
        if token.type != T.FLOW_SEQUENCE_END:
            if not first:
                if token.type != T.FLOW_ENTRY:
                    raise self._error(
                        "while parsing a flow sequence: did not find expected ',' or ']'",
                        token.start,
                    )
                self.skip_token()
                token = self.peek_token()
            if token.type == T.KEY:
                self.state = self._parse_flow_sequence_entry_mapping_key
                event = Event(MAPPING_START_EVENT, token.start, token.end)
                event.implicit = True
                event.style = FLOW_STYLE
                self.skip_token()
                return event
            if token.type != T.FLOW_SEQUENCE_END:
                self.states.append(self._parse_flow_sequence_next_entry)
                return self._parse_node(block=False, indentless_sequence=False)
        self._pop_state()
        self.marks.pop()
        event = Event(SEQUENCE_END_EVENT, token.start, token.end)
        self._set_event_comments(event)
        self.skip_token()
        return event

    def _parse_flow_sequence_entry_mapping_key(self) -> Event:
        token = self.peek_token()
        if token.type not in (T.VALUE, T.FLOW_ENTRY, T.FLOW_SEQUENCE_END):
            self.states.append(self._parse_flow_sequence_entry_mapping_value)
            return self._parse_node(block=False, indentless_sequence=False)
        mark = token.end
        self.skip_token()
        self.state = self._parse_flow_sequence_entry_mapping_value
        return self._empty_scalar(mark)

    def _parse_flow_sequence_entry_mapping_value(self) -> Event:
        token = self.peek_token()
        if token.type == T.VALUE:
            self.skip_token()
            token = self.peek_token()
            if token.type not in (T.FLOW_ENTRY, T.FLOW_SEQUENCE_END):
                self.states.append(self._parse_flow_sequence_entry_mapping_end)
                return self._parse_node(block=False, indentless_sequence=False)
        self.state = self._parse_flow_sequence_entry_mapping_end
        return self._empty_scalar(token.start)

    def _parse_flow_sequence_entry_mapping_end(self) -> Event:
        token = self.peek_token()
        self.state = self._parse_flow_sequence_next_entry
        return Event(MAPPING_END_EVENT, token.start, token.start)

    def _parse_flow_mapping_first_key(self) -> Event:
        token = self.peek_token()
        self.marks.append(token.start)
        self.skip_token()
        return self._parse_flow_mapping_key(first=True)

    def _parse_flow_mapping_next_key(self) -> Event:
        return self._parse_flow_mapping_key(first=False)

    def _parse_flow_mapping_key(self, *, first: bool) -> Event:
        token = self.peek_token()
        if token.type != T.FLOW_MAPPING_END:
            if not first:
                if token.type != T.FLOW_ENTRY:
                    raise self._error(
                        "while parsing a flow mapping: did not find expected ',' or '}'",
                        token.start,
                    )
                self.skip_token()
                token = self.peek_token()
            if token.type == T.KEY:
                self.skip_token()
                token = self.peek_token()
                if token.type not in (T.VALUE, T.FLOW_ENTRY, T.FLOW_MAPPING_END):
                    self.states.append(self._parse_flow_mapping_value)
                    return self._parse_node(block=False, indentless_sequence=False)
                self.state = self._parse_flow_mapping_value
                return self._empty_scalar(token.start)
            if token.type != T.FLOW_MAPPING_END:
                self.states.append(self._parse_flow_mapping_empty_value)
                return self._parse_node(block=False, indentless_sequence=False)
        self._pop_state()
        self.marks.pop()
        event = Event(MAPPING_END_EVENT, token.start, token.end)
        self._set_event_comments(event)
        self.skip_token()
        return event

    def _parse_flow_mapping_value(self) -> Event:
        token = self.peek_token()
        if token.type == T.VALUE:
            self.skip_token()
            token = self.peek_token()
            if token.type not in (T.FLOW_ENTRY, T.FLOW_MAPPING_END):
                self.states.append(self._parse_flow_mapping_next_key)
                return self._parse_node(block=False, indentless_sequence=False)
        self.state = self._parse_flow_mapping_next_key
        return self._empty_scalar(token.start)

    def _parse_flow_mapping_empty_value(self) -> Event:
        token = self.peek_token()
        self.state = self._parse_flow_mapping_next_key
        return self._empty_scalar(token.start)

    def _empty_scalar(self, mark: Mark) -> Event:
        event = Event(SCALAR_EVENT, mark, mark)
        event.implicit = True
        event.style = T.PLAIN
        return event

    def _process_directives(self) -> None:
        version_seen = False
        tags: list[tuple[str, str]] = []
        token: Token = self.peek_token()
        while token.type in (T.VERSION_DIRECTIVE, T.TAG_DIRECTIVE):
            if token.type == T.VERSION_DIRECTIVE:
                if version_seen:
                    raise self._error("found duplicate %YAML directive", token.start)
                if token.major != 1 or token.minor != 1:
                    raise self._error("found incompatible YAML document", token.start)
                version_seen = True
            else:
                if any(h == token.value for h, _ in self.tag_directives):
                    raise self._error("found duplicate %TAG directive", token.start)
                self.tag_directives.append((token.value, token.prefix))
                tags.append((token.value, token.prefix))
            self.skip_token()
            token = self.peek_token()
        for h, prefix in _DEFAULT_TAG_DIRECTIVES:
            if not any(existing == h for existing, _ in self.tag_directives):
                self.tag_directives.append((h, prefix))

    # -- nodes ----------------------------------------------------------------------

    def _peek(self) -> Event:
        if self.event is None:
            self.event = self._next_event()
        return self.event

    def _expect(self, type_: int) -> Event:
        event = self._peek()
        if event.type == STREAM_END_EVENT and type_ != STREAM_END_EVENT:
            raise self._error("attempted to go past the end of stream; corrupted value?")
        if event.type != type_:
            raise self._error(f"expected event {type_} but got {event.type}")
        self.event = None
        return event

    def documents(self) -> list[Node]:
        """Parse the whole stream; one document node per YAML document."""
        self._expect(STREAM_START_EVENT)
        docs: list[Node] = []
        while self._peek().type != STREAM_END_EVENT:
            docs.append(self._document())
        return docs

    def _node(self, kind: int, default_tag: str, tag: str, value: str, event: Event) -> Node:
        style = 0
        if tag and tag != "!":
            tag = short_tag(tag)
            style = TAGGED_STYLE
        elif default_tag:
            tag = default_tag
        elif kind == SCALAR:
            tag = resolve_tag(value)
        else:
            tag = ""
        n = Node(kind, tag, value, style)
        n.line = event.start[1] + 1
        n.column = event.start[2] + 1
        n.head_comment = event.head_comment
        n.line_comment = event.line_comment
        n.foot_comment = event.foot_comment
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise LimitError(f"yaml: more than {MAX_NODES} nodes")
        return n

    def _parse_any(self) -> Node:
        t = self._peek().type
        if t == SCALAR_EVENT:
            return self._scalar()
        if t == ALIAS_EVENT:
            return self._alias()
        if t == MAPPING_START_EVENT:
            return self._mapping()
        if t == SEQUENCE_START_EVENT:
            return self._sequence()
        if t == DOCUMENT_START_EVENT:
            return self._document()
        raise self._error("unexpected event")

    def _document(self) -> Node:
        event = self._peek()
        n = self._node(DOCUMENT, "", "", "", event)
        self._expect(DOCUMENT_START_EVENT)
        n.content.append(self._parse_any())
        if self._peek().type == DOCUMENT_END_EVENT:
            n.foot_comment = self._peek().foot_comment
        self._expect(DOCUMENT_END_EVENT)
        return n

    def _alias(self) -> Node:
        event = self._peek()
        n = self._node(ALIAS, "", "", event.anchor, event)
        target = self.anchors.get(n.value)
        if target is None:
            raise self._error(
                "unknown anchor referenced (an unquoted value starting with '*' is an alias;"
                " quote it)",
                event.start,
            )
        n.alias = target
        self._expect(ALIAS_EVENT)
        return n

    def _scalar(self) -> Node:
        event = self._peek()
        style = 0
        s = event.style
        if s == T.DOUBLE_QUOTED:
            style = DOUBLE_QUOTED_STYLE
        elif s == T.SINGLE_QUOTED:
            style = SINGLE_QUOTED_STYLE
        elif s == T.LITERAL:
            style = LITERAL_STYLE
        elif s == T.FOLDED:
            style = FOLDED_STYLE
        default_tag = ""
        if style == 0:
            if event.value == "<<":
                default_tag = "!!merge"
        else:
            default_tag = "!!str"
        n = self._node(SCALAR, default_tag, event.tag, event.value, event)
        n.style |= style
        if event.anchor:
            n.anchor = event.anchor
            self.anchors[event.anchor] = n
        self._expect(SCALAR_EVENT)
        return n

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(f"yaml: nesting deeper than {MAX_DEPTH} levels")

    def _sequence(self) -> Node:
        event = self._peek()
        n = self._node(SEQUENCE, "!!seq", event.tag, "", event)
        if event.style & FLOW_STYLE:
            n.style |= FLOW_STYLE
        if event.anchor:
            n.anchor = event.anchor
            self.anchors[event.anchor] = n
        self._expect(SEQUENCE_START_EVENT)
        self._enter()
        while self._peek().type != SEQUENCE_END_EVENT:
            n.content.append(self._parse_any())
        self.depth -= 1
        end = self._peek()
        n.line_comment = end.line_comment
        n.foot_comment = end.foot_comment
        self._expect(SEQUENCE_END_EVENT)
        return n

    def _mapping(self) -> Node:
        event = self._peek()
        n = self._node(MAPPING, "!!map", event.tag, "", event)
        block = True
        if event.style & FLOW_STYLE:
            block = False
            n.style |= FLOW_STYLE
        if event.anchor:
            n.anchor = event.anchor
            self.anchors[event.anchor] = n
        self._expect(MAPPING_START_EVENT)
        self._enter()
        content = n.content
        while self._peek().type != MAPPING_END_EVENT:
            k = self._parse_any()
            content.append(k)
            # A foot comment on a key, when dedented, belongs to the prior value.
            if block and k.foot_comment and len(content) > 2:
                content[-3].foot_comment = k.foot_comment
                k.foot_comment = ""
            v = self._parse_any()
            content.append(v)
            if not k.foot_comment and v.foot_comment:
                k.foot_comment = v.foot_comment
                v.foot_comment = ""
        self.depth -= 1
        end = self._peek()
        n.line_comment = end.line_comment
        n.foot_comment = end.foot_comment
        if block and n.foot_comment and len(content) > 1:
            content[-2].foot_comment = n.foot_comment
            n.foot_comment = ""
        self._expect(MAPPING_END_EVENT)
        return n


def parse_documents(text: str) -> list[Node]:
    """Parse YAML text (already decoded) into document nodes."""
    return Parser(text).documents()
