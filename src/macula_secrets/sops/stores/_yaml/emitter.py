"""YAML writer: nodes -> events -> text, laid out as go-yaml v3 lays them out.

sops prints every YAML file through go-yaml's encoder, so byte-compatible
output needs go-yaml's choices: which scalar style a string gets (plain,
quoted, literal block), how indentation works for nested sequences, where
head, line and foot comments go, and when a key needs the ``? `` form. The
emitter below is an event-driven state machine with the same states and
decisions as go-yaml's (derived from libyaml). Line folding is never used
because sops sets an unlimited line width, so it is left out.

:func:`scalar_node` builds the node sops builds for a Go value (its
``Node.Encode``), including the quoting a string needs to keep its type.

See ``scanner.py`` for the licence note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ....errors import FormatError
from . import nodes as S
from .parser import (
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
from .scalars import (  # re-exported for callers of the emitter
    _BREAKS,
    _HAS_BREAK,
    _ScalarData,
    analyze_scalar,
    double_quoted_body,
)

# Event types (emitter side).
E_STREAM_START: Final = 1
E_STREAM_END: Final = 2
E_DOCUMENT_START: Final = 3
E_DOCUMENT_END: Final = 4
E_ALIAS: Final = 5
E_SCALAR: Final = 6
E_SEQUENCE_START: Final = 7
E_SEQUENCE_END: Final = 8
E_MAPPING_START: Final = 9
E_MAPPING_END: Final = 10

BLOCK_STYLE: Final = 1
FLOW: Final = 2

_LONG_PREFIX: Final = "tag:yaml.org,2002:"
_DEFAULT_TAG_DIRECTIVES: Final = (("!", "!"), ("!!", _LONG_PREFIX))
class EmitEvent:
    __slots__ = (
        "anchor",
        "foot_comment",
        "head_comment",
        "implicit",
        "line_comment",
        "quoted_implicit",
        "style",
        "tag",
        "tail_comment",
        "type",
        "value",
    )

    def __init__(self, type_: int) -> None:
        self.type = type_
        self.anchor = ""
        self.tag = ""
        self.value = ""
        self.implicit = False
        self.quoted_implicit = False
        self.style = 0
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""
        self.tail_comment = ""


class Emitter:
    """Events in, text out. Call :meth:`emit` for each event, then :meth:`getvalue`."""

    def __init__(self, *, indent: int = 4) -> None:
        self.out: list[str] = []
        self.events: list[EmitEvent] = []
        self.events_head = 0
        self.best_indent = indent if 2 <= indent <= 9 else 2
        self.state: Callable[[EmitEvent], None] = self._emit_stream_start
        self.states: list[Callable[[EmitEvent], None]] = []
        self.indent = -1
        self.indents: list[int] = []
        self.flow_level = 0
        self.root_context = False
        self.sequence_context = False
        self.mapping_context = False
        self.simple_key_context = False
        self.line = 0
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.open_ended = False
        self.space_above = True
        self.foot_indent = -1
        self.anchor = ""
        self.anchor_alias = False
        self.tag_handle = ""
        self.tag_suffix = ""
        self.scalar = _ScalarData()
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""
        self.tail_comment = ""
        self.key_line_comment = ""
        self.tag_directives: list[tuple[str, str]] = []

    def getvalue(self) -> str:
        return "".join(self.out)

    # -- output primitives --------------------------------------------------------

    def _put(self, c: str) -> None:
        self.out.append(c)
        self.column += 1

    def _put_break(self) -> None:
        self.out.append("\n")
        if self.column == 0:
            self.space_above = True
        self.column = 0
        self.line += 1
        self.indention = True

    def _write(self, c: str) -> None:
        self.out.append(c)
        self.column += 1

    def _write_all(self, s: str) -> None:
        self.out.append(s)
        self.column += len(s)

    def _write_break(self, c: str) -> None:
        if c == "\n":
            self._put_break()
        else:
            self._write(c)
            if self.column == 0:
                self.space_above = True
            self.column = 0
            self.line += 1
            self.indention = True

    # -- event intake -----------------------------------------------------------------

    def emit(self, event: EmitEvent) -> None:
        self.events.append(event)
        while not self._need_more_events():
            ev = self.events[self.events_head]
            self._analyze_event(ev)
            self.state(ev)
            self.events_head += 1

    def _need_more_events(self) -> bool:
        if self.events_head == len(self.events):
            return True
        t = self.events[self.events_head].type
        if t == E_DOCUMENT_START:
            accumulate = 1
        elif t == E_SEQUENCE_START:
            accumulate = 2
        elif t == E_MAPPING_START:
            accumulate = 3
        else:
            return False
        if len(self.events) - self.events_head > accumulate:
            return False
        level = 0
        for i in range(self.events_head, len(self.events)):
            et = self.events[i].type
            if et in (E_STREAM_START, E_DOCUMENT_START, E_SEQUENCE_START, E_MAPPING_START):
                level += 1
            elif et in (E_STREAM_END, E_DOCUMENT_END, E_SEQUENCE_END, E_MAPPING_END):
                level -= 1
            if level == 0:
                return False
        return True

    def _increase_indent(self, *, flow: bool, indentless: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = self.best_indent if flow else 0
        elif not indentless:
            if self.states and self.states[-1] == self._emit_block_sequence_next_item:
                # The first indent inside a sequence skips the "- " indicator.
                self.indent += 2
            else:
                self.indent = self.best_indent * ((self.indent + self.best_indent)
                                                  // self.best_indent)

    def _pop_indent(self) -> None:
        self.indent = self.indents.pop()

    def _pop_state(self) -> None:
        self.state = self.states.pop()

    # -- states ----------------------------------------------------------------------------

    def _emit_stream_start(self, event: EmitEvent) -> None:
        if event.type != E_STREAM_START:
            raise FormatError("yaml emitter: expected STREAM-START")
        self.indent = -1
        self.line = 0
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.space_above = True
        self.foot_indent = -1
        self.state = self._emit_first_document_start

    def _emit_first_document_start(self, event: EmitEvent) -> None:
        self._emit_document_start(event, first=True)

    def _emit_next_document_start(self, event: EmitEvent) -> None:
        self._emit_document_start(event, first=False)

    def _emit_document_start(self, event: EmitEvent, *, first: bool) -> None:
        if event.type == E_DOCUMENT_START:
            for h, p in _DEFAULT_TAG_DIRECTIVES:
                if not any(x == h for x, _ in self.tag_directives):
                    self.tag_directives.append((h, p))
            implicit = event.implicit and first
            if not implicit:
                self._write_indent()
                self._write_indicator("---", need_whitespace=True)
                self._write_indent()
            if self.head_comment:
                self._process_head_comment()
                self._put_break()
            self.state = self._emit_document_content
            return
        if event.type == E_STREAM_END:
            if self.open_ended:
                self._write_indicator("...", need_whitespace=True)
                self._write_indent()
            self.state = self._emit_end
            return
        raise FormatError("yaml emitter: expected DOCUMENT-START or STREAM-END")

    def _emit_end(self, event: EmitEvent) -> None:
        raise FormatError("yaml emitter: expected nothing after STREAM-END")

    def _emit_document_content(self, event: EmitEvent) -> None:
        self.states.append(self._emit_document_end)
        self._process_head_comment()
        self._emit_node(event, root=True, sequence=False, mapping=False, simple_key=False)
        self._process_line_comment()
        self._process_foot_comment()

    def _emit_document_end(self, event: EmitEvent) -> None:
        if event.type != E_DOCUMENT_END:
            raise FormatError("yaml emitter: expected DOCUMENT-END")
        self.foot_indent = 0  # force document foot separation
        self._process_foot_comment()
        self.foot_indent = -1
        self._write_indent()
        if not event.implicit:
            self._write_indicator("...", need_whitespace=True)
            self._write_indent()
        self.state = self._emit_next_document_start
        self.tag_directives = []

    def _emit_flow_sequence_first_item(self, event: EmitEvent) -> None:
        self._emit_flow_sequence_item(event, first=True, trail=False)

    def _emit_flow_sequence_next_item(self, event: EmitEvent) -> None:
        self._emit_flow_sequence_item(event, first=False, trail=False)

    def _emit_flow_sequence_trail_item(self, event: EmitEvent) -> None:
        self._emit_flow_sequence_item(event, first=False, trail=True)

    def _emit_flow_sequence_item(self, event: EmitEvent, *, first: bool, trail: bool) -> None:
        if first:
            self._write_indicator("[", need_whitespace=True, is_whitespace=True)
            self._increase_indent(flow=True, indentless=False)
            self.flow_level += 1
        if event.type == E_SEQUENCE_END:
            self.flow_level -= 1
            self._pop_indent()
            if self.column == 0:
                self._write_indent()
            self._write_indicator("]")
            self._process_line_comment()
            self._process_foot_comment()
            self._pop_state()
            return
        if not first and not trail:
            self._write_indicator(",")
        self._process_head_comment()
        if self.column == 0:
            self._write_indent()
        if self.line_comment or self.foot_comment or self.tail_comment:
            self.states.append(self._emit_flow_sequence_trail_item)
        else:
            self.states.append(self._emit_flow_sequence_next_item)
        self._emit_node(event, root=False, sequence=True, mapping=False, simple_key=False)
        if self.line_comment or self.foot_comment or self.tail_comment:
            self._write_indicator(",")
        self._process_line_comment()
        self._process_foot_comment()

    def _emit_flow_mapping_first_key(self, event: EmitEvent) -> None:
        self._emit_flow_mapping_key(event, first=True, trail=False)

    def _emit_flow_mapping_next_key(self, event: EmitEvent) -> None:
        self._emit_flow_mapping_key(event, first=False, trail=False)

    def _emit_flow_mapping_trail_key(self, event: EmitEvent) -> None:
        self._emit_flow_mapping_key(event, first=False, trail=True)

    def _emit_flow_mapping_key(self, event: EmitEvent, *, first: bool, trail: bool) -> None:
        if first:
            self._write_indicator("{", need_whitespace=True, is_whitespace=True)
            self._increase_indent(flow=True, indentless=False)
            self.flow_level += 1
        if event.type == E_MAPPING_END:
            if (self.head_comment or self.foot_comment or self.tail_comment) and not first \
                    and not trail:
                self._write_indicator(",")
            self._process_head_comment()
            self.flow_level -= 1
            self._pop_indent()
            self._write_indicator("}")
            self._process_line_comment()
            self._process_foot_comment()
            self._pop_state()
            return
        if not first and not trail:
            self._write_indicator(",")
        self._process_head_comment()
        if self.column == 0:
            self._write_indent()
        if self._check_simple_key():
            self.states.append(self._emit_flow_mapping_simple_value)
            self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=True)
            return
        self._write_indicator("?", need_whitespace=True)
        self.states.append(self._emit_flow_mapping_value)
        self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=False)

    def _emit_flow_mapping_simple_value(self, event: EmitEvent) -> None:
        self._emit_flow_mapping_value_common(event, simple=True)

    def _emit_flow_mapping_value(self, event: EmitEvent) -> None:
        self._emit_flow_mapping_value_common(event, simple=False)

    def _emit_flow_mapping_value_common(self, event: EmitEvent, *, simple: bool) -> None:
        if simple:
            self._write_indicator(":")
        else:
            self._write_indicator(":", need_whitespace=True)
        if self.line_comment or self.foot_comment or self.tail_comment:
            self.states.append(self._emit_flow_mapping_trail_key)
        else:
            self.states.append(self._emit_flow_mapping_next_key)
        self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=False)
        if self.line_comment or self.foot_comment or self.tail_comment:
            self._write_indicator(",")
        self._process_line_comment()
        self._process_foot_comment()

    def _emit_block_sequence_first_item(self, event: EmitEvent) -> None:
        self._increase_indent(flow=False, indentless=False)
        self._emit_block_sequence_item(event)

    def _emit_block_sequence_next_item(self, event: EmitEvent) -> None:
        self._emit_block_sequence_item(event)

    def _emit_block_sequence_item(self, event: EmitEvent) -> None:
        if event.type == E_SEQUENCE_END:
            self._pop_indent()
            self._pop_state()
            return
        self._process_head_comment()
        self._write_indent()
        self._write_indicator("-", need_whitespace=True, is_indention=True)
        self.states.append(self._emit_block_sequence_next_item)
        self._emit_node(event, root=False, sequence=True, mapping=False, simple_key=False)
        self._process_line_comment()
        self._process_foot_comment()

    def _emit_block_mapping_first_key(self, event: EmitEvent) -> None:
        self._increase_indent(flow=False, indentless=False)
        self._emit_block_mapping_key(event)

    def _emit_block_mapping_key(self, event: EmitEvent) -> None:
        self._process_head_comment()
        if event.type == E_MAPPING_END:
            self._pop_indent()
            self._pop_state()
            return
        self._write_indent()
        if self.line_comment:
            # A line comment on a key: keep it and place it after the value.
            self.key_line_comment = self.line_comment
            self.line_comment = ""
        if self._check_simple_key():
            self.states.append(self._emit_block_mapping_simple_value)
            self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=True)
            return
        self._write_indicator("?", need_whitespace=True, is_indention=True)
        self.states.append(self._emit_block_mapping_value)
        self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=False)

    def _emit_block_mapping_simple_value(self, event: EmitEvent) -> None:
        self._emit_block_mapping_value_common(event, simple=True)

    def _emit_block_mapping_value(self, event: EmitEvent) -> None:
        self._emit_block_mapping_value_common(event, simple=False)

    def _emit_block_mapping_value_common(self, event: EmitEvent, *, simple: bool) -> None:
        if simple:
            self._write_indicator(":")
        else:
            self._write_indent()
            self._write_indicator(":", need_whitespace=True, is_indention=True)
        if self.key_line_comment:
            if event.type == E_SCALAR:
                if not self.line_comment:
                    self.line_comment = self.key_line_comment
                    self.key_line_comment = ""
            elif event.style != FLOW and event.type in (E_MAPPING_START, E_SEQUENCE_START):
                self.line_comment, self.key_line_comment = self.key_line_comment, self.line_comment
                self._process_line_comment()
                self.line_comment, self.key_line_comment = self.key_line_comment, self.line_comment
        self.states.append(self._emit_block_mapping_key)
        self._emit_node(event, root=False, sequence=False, mapping=True, simple_key=False)
        self._process_line_comment()
        self._process_foot_comment()

    def _emit_node(
        self, event: EmitEvent, *, root: bool, sequence: bool, mapping: bool, simple_key: bool
    ) -> None:
        self.root_context = root
        self.sequence_context = sequence
        self.mapping_context = mapping
        self.simple_key_context = simple_key
        t = event.type
        if t == E_ALIAS:
            self._process_anchor()
            self._pop_state()
        elif t == E_SCALAR:
            self._select_scalar_style(event)
            self._process_anchor()
            self._process_tag()
            self._increase_indent(flow=True, indentless=False)
            self._process_scalar()
            self._pop_indent()
            self._pop_state()
        elif t == E_SEQUENCE_START:
            self._process_anchor()
            self._process_tag()
            if self.flow_level > 0 or event.style == FLOW or self._check_empty(E_SEQUENCE_START,
                                                                                 E_SEQUENCE_END):
                self.state = self._emit_flow_sequence_first_item
            else:
                self.state = self._emit_block_sequence_first_item
        elif t == E_MAPPING_START:
            self._process_anchor()
            self._process_tag()
            if self.flow_level > 0 or event.style == FLOW or self._check_empty(E_MAPPING_START,
                                                                                 E_MAPPING_END):
                self.state = self._emit_flow_mapping_first_key
            else:
                self.state = self._emit_block_mapping_first_key
        else:
            raise FormatError("yaml emitter: expected a node")

    def _check_empty(self, start: int, end: int) -> bool:
        if len(self.events) - self.events_head < 2:
            return False
        return (
            self.events[self.events_head].type == start
            and self.events[self.events_head + 1].type == end
        )

    def _check_simple_key(self) -> bool:
        ev = self.events[self.events_head]
        length = 0
        if ev.type == E_ALIAS:
            length += len(self.anchor)
        elif ev.type == E_SCALAR:
            if self.scalar.multiline:
                return False
            length += len(self.anchor) + len(self.tag_handle) + len(self.tag_suffix) + len(
                self.scalar.value.encode("utf-8")
            )
        elif ev.type == E_SEQUENCE_START:
            if not self._check_empty(E_SEQUENCE_START, E_SEQUENCE_END):
                return False
            length += len(self.anchor) + len(self.tag_handle) + len(self.tag_suffix)
        elif ev.type == E_MAPPING_START:
            if not self._check_empty(E_MAPPING_START, E_MAPPING_END):
                return False
            length += len(self.anchor) + len(self.tag_handle) + len(self.tag_suffix)
        else:
            return False
        return length <= 128

    def _select_scalar_style(self, event: EmitEvent) -> None:
        no_tag = not self.tag_handle and not self.tag_suffix
        if no_tag and not event.implicit and not event.quoted_implicit:
            raise FormatError("yaml emitter: neither tag nor implicit flags are specified")
        style = event.style or S.PLAIN
        data = self.scalar
        if self.simple_key_context and data.multiline:
            style = S.DOUBLE_QUOTED
        if style == S.PLAIN:
            if (self.flow_level > 0 and not data.flow_plain_allowed) or (
                self.flow_level == 0 and not data.block_plain_allowed
            ):
                style = S.SINGLE_QUOTED
            if not data.value and (self.flow_level > 0 or self.simple_key_context):
                style = S.SINGLE_QUOTED
            if no_tag and not event.implicit:
                style = S.SINGLE_QUOTED
        if style == S.SINGLE_QUOTED and not data.single_quoted_allowed:
            style = S.DOUBLE_QUOTED
        if style in (S.LITERAL, S.FOLDED) and (
            not data.block_allowed or self.flow_level > 0 or self.simple_key_context
        ):
            style = S.DOUBLE_QUOTED
        if no_tag and not event.quoted_implicit and style != S.PLAIN:
            self.tag_handle = "!"
        data.style = style

    def _process_anchor(self) -> None:
        if not self.anchor:
            return
        self._write_indicator("*" if self.anchor_alias else "&", need_whitespace=True)
        self._write_all(self.anchor)
        self.whitespace = False
        self.indention = False

    def _process_tag(self) -> None:
        if not self.tag_handle and not self.tag_suffix:
            return
        if self.tag_handle:
            self._write_tag_handle(self.tag_handle)
            if self.tag_suffix:
                self._write_tag_content(self.tag_suffix, need_whitespace=False)
        else:
            self._write_indicator("!<", need_whitespace=True)
            self._write_tag_content(self.tag_suffix, need_whitespace=False)
            self._write_indicator(">")

    def _process_scalar(self) -> None:
        style = self.scalar.style
        value = self.scalar.value
        if style == S.PLAIN:
            self._write_plain(value)
        elif style == S.SINGLE_QUOTED:
            self._write_single_quoted(value)
        elif style == S.DOUBLE_QUOTED:
            self._write_double_quoted(value)
        elif style == S.LITERAL:
            self._write_literal(value)
        else:
            self._write_folded(value)

    # -- comments ---------------------------------------------------------------------------

    def _process_head_comment(self) -> None:
        if self.tail_comment:
            self._write_indent()
            self._write_comment(self.tail_comment)
            self.tail_comment = ""
            self.foot_indent = max(self.indent, 0)
        if not self.head_comment:
            return
        self._write_indent()
        self._write_comment(self.head_comment)
        self.head_comment = ""

    def _process_line_comment(self, *, linebreak: bool = False) -> None:
        if not self.line_comment:
            if linebreak:
                self._put_break()
            return
        if not self.whitespace:
            self._put(" ")
        self._write_comment(self.line_comment)
        self.line_comment = ""

    def _process_foot_comment(self) -> None:
        if not self.foot_comment:
            return
        self._write_indent()
        self._write_comment(self.foot_comment)
        self.foot_comment = ""
        self.foot_indent = max(self.indent, 0)

    def _write_comment(self, comment: str) -> None:
        breaks = False
        pound = False
        for c in comment:
            if c in _BREAKS:
                self._write_break(c)
                breaks = True
                pound = False
            else:
                if breaks:
                    self._write_indent()
                if not pound:
                    if c != "#":
                        self._put("#")
                        self._put(" ")
                    pound = True
                self._write(c)
                self.indention = False
                breaks = False
        if not breaks:
            self._put_break()
        self.whitespace = True

    # -- analysis --------------------------------------------------------------------------

    def _analyze_event(self, event: EmitEvent) -> None:
        self.anchor = ""
        self.anchor_alias = False
        self.tag_handle = ""
        self.tag_suffix = ""
        self.scalar.value = ""
        if event.head_comment:
            self.head_comment = event.head_comment
        if event.line_comment:
            self.line_comment = event.line_comment
        if event.foot_comment:
            self.foot_comment = event.foot_comment
        if event.tail_comment:
            self.tail_comment = event.tail_comment
        t = event.type
        if t == E_ALIAS:
            self.anchor = event.anchor
            self.anchor_alias = True
        elif t == E_SCALAR:
            self.anchor = event.anchor
            if event.tag and not event.implicit and not event.quoted_implicit:
                self._analyze_tag(event.tag)
            analyze_scalar(event.value, self.scalar)
        elif t in (E_SEQUENCE_START, E_MAPPING_START):
            self.anchor = event.anchor
            if event.tag and not event.implicit:
                self._analyze_tag(event.tag)

    def _analyze_tag(self, tag: str) -> None:
        for handle, prefix in self.tag_directives:
            if tag.startswith(prefix):
                self.tag_handle = handle
                self.tag_suffix = tag[len(prefix):]
                return
        self.tag_suffix = tag

    # -- writers ------------------------------------------------------------------------------

    def _write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self._put_break()
        if self.foot_indent == indent:
            self._put_break()
        if self.column < indent:
            self.out.append(" " * (indent - self.column))
            self.column = indent
        self.whitespace = True
        self.space_above = False
        self.foot_indent = -1

    def _write_indicator(
        self,
        indicator: str,
        *,
        need_whitespace: bool = False,
        is_whitespace: bool = False,
        is_indention: bool = False,
    ) -> None:
        if need_whitespace and not self.whitespace:
            self._put(" ")
        self._write_all(indicator)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention
        self.open_ended = False

    def _write_tag_handle(self, value: str) -> None:
        if not self.whitespace:
            self._put(" ")
        self._write_all(value)
        self.whitespace = False
        self.indention = False

    def _write_tag_content(self, value: str, *, need_whitespace: bool) -> None:
        if need_whitespace and not self.whitespace:
            self._put(" ")
        for c in value:
            if c in ";/?:@&=+$,_.~*'()[]" or (c.isascii() and (c.isalnum() or c in "_-")):
                self._write(c)
            else:
                for octet in c.encode("utf-8"):
                    self._write_all(f"%{octet:02X}")
        self.whitespace = False
        self.indention = False

    def _write_plain(self, value: str) -> None:
        if value and not self.whitespace:
            self._put(" ")
        if not _HAS_BREAK.search(value):
            self.out.append(value)
            self.column += len(value)
            if value:
                self.whitespace = False
            self.indention = False
            if self.root_context:
                self.open_ended = True
            return
        breaks = False
        for c in value:
            if c == " ":
                self._write(c)
            elif c in _BREAKS:
                if not breaks and c == "\n":
                    self._put_break()
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._write(c)
                self.indention = False
                breaks = False
        if value:
            self.whitespace = False
        self.indention = False
        if self.root_context:
            self.open_ended = True

    def _write_single_quoted(self, value: str) -> None:
        self._write_indicator("'", need_whitespace=True)
        breaks = False
        for c in value:
            if c == " ":
                self._write(c)
            elif c in _BREAKS:
                if not breaks and c == "\n":
                    self._put_break()
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                if c == "'":
                    self._put("'")
                self._write(c)
                self.indention = False
                breaks = False
        self._write_indicator("'")
        self.whitespace = False
        self.indention = False

    def _write_double_quoted(self, value: str) -> None:
        self._write_indicator('"', need_whitespace=True)
        body = double_quoted_body(value)
        self.out.append(body)
        self.column += len(body)
        self._write_indicator('"')
        self.whitespace = False
        self.indention = False

    def _write_block_scalar_hints(self, value: str) -> None:
        if value and (value[0] == " " or value[0] in _BREAKS):
            self._write_indicator(str(self.best_indent))
        self.open_ended = False
        chomp = ""
        if not value or value[-1] not in _BREAKS:
            chomp = "-"
        elif len(value) == 1 or value[-2] in _BREAKS:
            chomp = "+"
            self.open_ended = True
        if chomp:
            self._write_indicator(chomp)

    def _write_literal(self, value: str) -> None:
        self._write_indicator("|", need_whitespace=True)
        self._write_block_scalar_hints(value)
        self._process_line_comment(linebreak=True)
        self.whitespace = True
        breaks = True
        for c in value:
            if c in _BREAKS:
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._write(c)
                self.indention = False
                breaks = False

    def _write_folded(self, value: str) -> None:
        self._write_indicator(">", need_whitespace=True)
        self._write_block_scalar_hints(value)
        self._process_line_comment(linebreak=True)
        self.whitespace = True
        breaks = True
        leading_spaces = True
        n = len(value)
        for c in value:
            if c in _BREAKS:
                if not breaks and not leading_spaces and c == "\n":
                    k = 0
                    while k < n and value[k] in _BREAKS:
                        k += 1
                    if not (k >= n or value[k] in " \t\r\n\x85\u2028\u2029"):
                        self._put_break()
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                    leading_spaces = c in " \t"
                self._write(c)
                self.indention = False
                breaks = False


class Encoder:
    """Turns node trees into emitter events, as go-yaml's ``encoder.node`` does."""

    def __init__(self, *, indent: int = 4) -> None:
        self.emitter = Emitter(indent=indent)
        self.emitter.emit(EmitEvent(E_STREAM_START))

    def encode_document(self, doc: Node) -> None:
        self._node(doc, "")

    def close(self) -> str:
        self.emitter.open_ended = False
        self.emitter.emit(EmitEvent(E_STREAM_END))
        return self.emitter.getvalue()

    def _node(self, node: Node, tail: str) -> None:
        emit = self.emitter.emit
        tag = node.tag
        stag = short_tag(tag)
        force_quoting = False
        if tag and not node.style & TAGGED_STYLE:
            if node.kind == SCALAR:
                if stag == "!!str" and node.style & (
                    SINGLE_QUOTED_STYLE | DOUBLE_QUOTED_STYLE | LITERAL_STYLE | FOLDED_STYLE
                ):
                    tag = ""
                else:
                    rtag = resolve_tag(node.value)
                    if rtag == stag:
                        tag = ""
                    elif stag == "!!str":
                        tag = ""
                        force_quoting = True
            else:
                rtag = "!!map" if node.kind == MAPPING else "!!seq" if node.kind == SEQUENCE else ""
                if rtag == stag:
                    tag = ""

        k = node.kind
        if k == DOCUMENT:
            ev = EmitEvent(E_DOCUMENT_START)
            ev.implicit = True
            ev.head_comment = node.head_comment
            emit(ev)
            for child in node.content:
                self._node(child, "")
            ev = EmitEvent(E_DOCUMENT_END)
            ev.implicit = True
            ev.foot_comment = node.foot_comment
            emit(ev)
        elif k == SEQUENCE:
            ev = EmitEvent(E_SEQUENCE_START)
            ev.anchor = node.anchor
            ev.tag = _long_tag(tag)
            ev.implicit = tag == ""
            ev.style = FLOW if node.style & FLOW_STYLE else BLOCK_STYLE
            ev.head_comment = node.head_comment
            emit(ev)
            for child in node.content:
                self._node(child, "")
            ev = EmitEvent(E_SEQUENCE_END)
            ev.line_comment = node.line_comment
            ev.foot_comment = node.foot_comment
            emit(ev)
        elif k == MAPPING:
            ev = EmitEvent(E_MAPPING_START)
            ev.anchor = node.anchor
            ev.tag = _long_tag(tag)
            ev.implicit = tag == ""
            ev.style = FLOW if node.style & FLOW_STYLE else BLOCK_STYLE
            ev.tail_comment = tail
            ev.head_comment = node.head_comment
            emit(ev)
            # The foot comment of each key is emitted as the tail of the next
            # key, once the whole value of the prior key has been written.
            pending = ""
            content = node.content
            for i in range(0, len(content) - 1, 2):
                key = content[i]
                foot = key.foot_comment
                if foot:
                    copy = Node(key.kind, key.tag, key.value, key.style)
                    copy.anchor = key.anchor
                    copy.alias = key.alias
                    copy.content = key.content
                    copy.head_comment = key.head_comment
                    copy.line_comment = key.line_comment
                    key = copy
                self._node(key, pending)
                pending = foot
                self._node(content[i + 1], "")
            ev = EmitEvent(E_MAPPING_END)
            ev.tail_comment = pending
            ev.line_comment = node.line_comment
            ev.foot_comment = node.foot_comment
            emit(ev)
        elif k == ALIAS:
            ev = EmitEvent(E_ALIAS)
            ev.anchor = node.value
            ev.head_comment = node.head_comment
            ev.line_comment = node.line_comment
            ev.foot_comment = node.foot_comment
            emit(ev)
        elif k == SCALAR:
            value = node.value
            if node.style & DOUBLE_QUOTED_STYLE:
                style = S.DOUBLE_QUOTED
            elif node.style & SINGLE_QUOTED_STYLE:
                style = S.SINGLE_QUOTED
            elif node.style & LITERAL_STYLE:
                style = S.LITERAL
            elif node.style & FOLDED_STYLE:
                style = S.FOLDED
            elif "\n" in value:
                style = S.LITERAL
            elif force_quoting:
                style = S.DOUBLE_QUOTED
            else:
                style = S.PLAIN
            ev = EmitEvent(E_SCALAR)
            ev.anchor = node.anchor
            ev.implicit = tag == ""
            ev.quoted_implicit = tag == ""
            if tag:
                ev.tag = _long_tag(tag)
            ev.value = value
            ev.style = style
            ev.head_comment = node.head_comment
            ev.line_comment = node.line_comment
            ev.foot_comment = node.foot_comment
            ev.tail_comment = tail
            emit(ev)
        else:
            raise FormatError(f"yaml: cannot encode node of kind {k}")


def _long_tag(tag: str) -> str:
    if tag.startswith("!!"):
        return _LONG_PREFIX + tag[2:]
    return tag


# -- Go values -> nodes (go-yaml's Node.Encode, as sops uses it) -------------------------

