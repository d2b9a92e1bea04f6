"""YAML scanner: text -> tokens and comments, as go-yaml v3 produces them.

The token grammar is YAML's own (the one libyaml, PyYAML and go-yaml share):
simple keys are found by looking ahead for ``:``, indentation opens and
closes blocks, and each token carries start and end marks. What is specific
to go-yaml, and matters for sops, is how comments are collected: each comment
is recorded with the mark of the token it belongs to and whether it is a
*head* (above the next node), *line* (after a node on its line) or *foot*
(below a node, ending a block). The parser hands them to events by those
marks. The rules below reproduce go-yaml's decisions, quirks included,
because sops users see them: a comment that moves to another nesting level
changes the file's MAC-free layout and the encryption of the comment.

Marks are ``(index, line, column)`` tuples, zero-based, counting characters.

The algorithms follow go-yaml v3 (MIT and Apache-2.0 licensed); this is an
independent Python implementation, tuned for CPython: hot loops consume runs
of characters with regular expressions instead of one character at a time.
"""

from __future__ import annotations

import re
from typing import Final

from ....errors import FormatError, LimitError
from .nodes import DOUBLE_QUOTED, FOLDED, LITERAL, PLAIN, SINGLE_QUOTED
from .text import decode_text

__all__ = [
    "DOUBLE_QUOTED", "FOLDED", "LITERAL", "PLAIN", "SINGLE_QUOTED", "Scanner", "Token",
    "YAMLSyntaxError", "decode_text",
]

# Token types.
STREAM_START: Final = 1
STREAM_END: Final = 2
VERSION_DIRECTIVE: Final = 3
TAG_DIRECTIVE: Final = 4
DOCUMENT_START: Final = 5
DOCUMENT_END: Final = 6
BLOCK_SEQUENCE_START: Final = 7
BLOCK_MAPPING_START: Final = 8
BLOCK_END: Final = 9
FLOW_SEQUENCE_START: Final = 10
FLOW_SEQUENCE_END: Final = 11
FLOW_MAPPING_START: Final = 12
FLOW_MAPPING_END: Final = 13
BLOCK_ENTRY: Final = 14
FLOW_ENTRY: Final = 15
KEY: Final = 16
VALUE: Final = 17
ALIAS: Final = 18
ANCHOR: Final = 19
TAG: Final = 20
SCALAR: Final = 21

Mark = tuple[int, int, int]

_BREAKS: Final = "\r\n\x85\u2028\u2029"
_BREAKZ: Final = _BREAKS + "\0"
_BLANKZ: Final = " \t" + _BREAKZ

#: Limits against hostile input (go-yaml has the same two).
MAX_INDENTS: Final = 10000
MAX_FLOW_LEVEL: Final = 10000

_SPACES = re.compile(" *")
_BLANKS = re.compile("[ \t]*")
_TO_BREAKZ = re.compile("[^\r\n\x85\u2028\u2029\0]*")
_ALPHA = re.compile("[0-9A-Za-z_-]*")
_URI = re.compile(r"[0-9A-Za-z_\-;/?:@&=+$,.!~*'()\[\]]*")
_PLAIN_BLOCK = re.compile("(?:[^ \t\r\n\x85\u2028\u2029\0:]|:(?![ \t\r\n\x85\u2028\u2029\0]))+")
_PLAIN_FLOW = re.compile(
    "(?:[^ \t\r\n\x85\u2028\u2029\0:,?\\[\\]{}]|:(?![ \t\r\n\x85\u2028\u2029\0]))+"
)
_SINGLE_RUN = re.compile("[^ \t\r\n\x85\u2028\u2029\0']+")
_DOUBLE_RUN = re.compile('[^ \t\r\n\x85\u2028\u2029\0"\\\\]+')

_ESCAPES: Final = {
    "0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "\t": "\t", "n": "\n", "v": "\x0b",
    "f": "\x0c", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "'": "'", "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX_LEN: Final = {"x": 2, "u": 4, "U": 8}


def _end(pattern: re.Pattern[str], s: str, pos: int) -> int:
    """Where a run matched by ``pattern`` (which may be empty) ends."""
    m = pattern.match(s, pos)
    return pos if m is None else m.end()


class Token:
    """One token; ``value`` is the scalar text, anchor name or tag handle."""

    __slots__ = ("end", "major", "minor", "prefix", "start", "style", "suffix", "type", "value")

    def __init__(self, type_: int, start: Mark, end: Mark, value: str = "", style: int = 0) -> None:
        self.type = type_
        self.start = start
        self.end = end
        self.value = value
        self.style = style
        self.suffix = ""
        self.prefix = ""
        self.major = 0
        self.minor = 0


class Comment:
    """A run of comment lines with the marks that decide where it belongs."""

    __slots__ = ("end_mark", "foot", "head", "line", "scan_mark", "start_mark", "token_mark")

    def __init__(
        self,
        scan_mark: Mark,
        token_mark: Mark,
        start_mark: Mark,
        end_mark: Mark,
        *,
        head: str = "",
        line: str = "",
        foot: str = "",
    ) -> None:
        self.scan_mark = scan_mark
        self.token_mark = token_mark
        self.start_mark = start_mark
        self.end_mark = end_mark
        self.head = head
        self.line = line
        self.foot = foot


class _SimpleKey:
    __slots__ = ("mark", "possible", "required", "token_number")

    def __init__(self, possible: bool, required: bool, token_number: int, mark: Mark) -> None:
        self.possible = possible
        self.required = required
        self.token_number = token_number
        self.mark = mark


class YAMLSyntaxError(FormatError):
    """The text is not valid YAML; the message names the line."""


class Scanner:
    """Produces tokens on demand (``peek_token``/``skip_token``) plus comments.

    The parser subclasses this; the comment fields it consumes
    (``head_comment`` and friends) live here because ``peek_token`` fills
    them, as in go-yaml.
    """

    def __init__(self, text: str) -> None:
        if not text:
            text = "\n"
        self.s = text + "\0\0\0\0"
        self.pos = 0
        self.line = 0
        self.col = 0
        self.newlines = 0
        self.tokens: list[Token] = []
        self.tokens_head = 0
        self.tokens_parsed = 0
        self.token_available = False
        self.stream_start_produced = False
        self.stream_end_produced = False
        self.indent = -1
        self.indents: list[int] = []
        self.simple_key_allowed = False
        self.simple_keys: list[_SimpleKey] = []
        self.simple_keys_by_tok: dict[int, int] = {}
        self.flow_level = 0
        self.comments: list[Comment] = []
        self.comments_head = 0
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""
        self.tail_comment = ""
        self.stem_comment: str | None = None

    # -- errors ---------------------------------------------------------------

    def _error(self, problem: str, mark: Mark | None = None) -> YAMLSyntaxError:
        line = (mark or self.mark)[1] + 1
        return YAMLSyntaxError(f"yaml: line {line}: {problem}")

    @property
    def mark(self) -> Mark:
        return (self.pos, self.line, self.col)

    # -- low-level movement -----------------------------------------------------

    def _skip(self) -> None:
        if self.s[self.pos] not in " \t":
            self.newlines = 0
        self.pos += 1
        self.col += 1

    def _skip_n(self, n: int) -> None:
        """Skip ``n`` characters known to be on one line and not all blank."""
        self.newlines = 0
        self.pos += n
        self.col += n

    def _skip_line(self) -> None:
        s, p = self.s, self.pos
        if s[p] == "\r" and s[p + 1] == "\n":
            self.pos += 2
        elif s[p] in _BREAKS:
            self.pos += 1
        else:
            return
        self.col = 0
        self.line += 1
        self.newlines += 1

    def _read_line(self) -> str:
        """Consume a line break and return its value in a scalar."""
        s, p = self.s, self.pos
        c = s[p]
        if c == "\r" and s[p + 1] == "\n":
            self.pos += 2
            out = "\n"
        elif c in "\r\n\x85":
            self.pos += 1
            out = "\n"
        elif c in "\u2028\u2029":
            self.pos += 1
            out = c
        else:
            return ""
        self.col = 0
        self.line += 1
        self.newlines += 1
        return out

    # -- token queue ------------------------------------------------------------

    def peek_token(self) -> Token:
        if not self.token_available:
            self._fetch_more_tokens()
        token = self.tokens[self.tokens_head]
        self._unfold_comments(token)
        return token

    def skip_token(self) -> None:
        self.token_available = False
        self.tokens_parsed += 1
        self.stream_end_produced = self.tokens[self.tokens_head].type == STREAM_END
        self.tokens_head += 1

    def _unfold_comments(self, token: Token) -> None:
        """Move comments that belong at or before ``token`` into the pending slots."""
        comments = self.comments
        while self.comments_head < len(comments):
            c = comments[self.comments_head]
            if token.start[0] < c.token_mark[0]:
                break
            if c.head:
                if token.type == BLOCK_END:
                    # No heads on ends: keep it for the token that follows.
                    break
                self.head_comment = (
                    self.head_comment + "\n" + c.head if self.head_comment else c.head
                )
            if c.foot:
                self.foot_comment = (
                    self.foot_comment + "\n" + c.foot if self.foot_comment else c.foot
                )
            if c.line:
                self.line_comment = (
                    self.line_comment + "\n" + c.line if self.line_comment else c.line
                )
            comments[self.comments_head] = Comment((0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0))
            self.comments_head += 1

    def _insert_token(self, pos: int, token: Token) -> None:
        if pos < 0:
            self.tokens.append(token)
        else:
            self.tokens.insert(self.tokens_head + pos, token)

    def _fetch_more_tokens(self) -> None:
        while True:
            # Two tokens of lookahead let foot and line comments be read
            # before the parser consumes the token they belong to.
            if self.tokens_head < len(self.tokens) - 2:
                idx = self.simple_keys_by_tok.get(self.tokens_parsed)
                if idx is None:
                    break
                if not self._simple_key_is_valid(self.simple_keys[idx]):
                    break
            self._fetch_next_token()
        self.token_available = True

    def _fetch_next_token(self) -> None:
        if not self.stream_start_produced:
            self._fetch_stream_start()
            return
        scan_mark = self.mark
        self._scan_to_next_token()
        self._unroll_indent(self.col, scan_mark)

        s, p = self.s, self.pos
        c = s[p]
        if c == "\0":
            self._fetch_stream_end()
            return
        if self.col == 0:
            if c == "%":
                self._fetch_directive()
                return
            if c in "-." and s[p + 1] == c and s[p + 2] == c and s[p + 3] in _BLANKZ:
                self._fetch_document_indicator(DOCUMENT_START if c == "-" else DOCUMENT_END)
                return

        comment_mark = self.mark
        if self.tokens and (
            (self.flow_level == 0 and c == ":") or (self.flow_level > 0 and c == ",")
        ):
            # Comments that follow belong with the prior token.
            comment_mark = self.tokens[-1].start

        n = s[p + 1]
        if c == "[":
            self._fetch_flow_collection_start(FLOW_SEQUENCE_START)
        elif c == "{":
            self._fetch_flow_collection_start(FLOW_MAPPING_START)
        elif c == "]":
            self._fetch_flow_collection_end(FLOW_SEQUENCE_END)
        elif c == "}":
            self._fetch_flow_collection_end(FLOW_MAPPING_END)
        elif c == ",":
            self._fetch_flow_entry()
        elif c == "-" and n in _BLANKZ:
            self._fetch_block_entry()
        elif c == "?" and (self.flow_level > 0 or n in _BLANKZ):
            self._fetch_key()
        elif c == ":" and (self.flow_level > 0 or n in _BLANKZ):
            self._fetch_value()
        elif c == "*":
            self._fetch_anchor(ALIAS)
        elif c == "&":
            self._fetch_anchor(ANCHOR)
        elif c == "!":
            self._fetch_tag()
        elif c == "|" and self.flow_level == 0:
            self._fetch_block_scalar(literal=True)
        elif c == ">" and self.flow_level == 0:
            self._fetch_block_scalar(literal=False)
        elif c == "'":
            self._fetch_flow_scalar(single=True)
        elif c == '"':
            self._fetch_flow_scalar(single=False)
        elif (
            c not in "-?:,[]{}#&*!|>'\"%@`" and c not in _BLANKZ
        ) or (c == "-" and n not in " \t") or (
            self.flow_level == 0 and c in "?:" and n not in _BLANKZ
        ):
            self._fetch_plain_scalar()
        else:
            raise self._error("found character that cannot start any token")

        # Sequence indicators alone have no line comments: a comment after
        # "- " becomes a head comment of whatever follows.
        if self.tokens and self.tokens[-1].type == BLOCK_ENTRY:
            return
        self._scan_line_comment(comment_mark)

    # -- simple keys --------------------------------------------------------------

    def _simple_key_is_valid(self, key: _SimpleKey) -> bool:
        if not key.possible:
            return False
        # A simple key is one line, at most 1024 characters long.
        if key.mark[1] < self.line or key.mark[0] + 1024 < self.pos:
            if key.required:
                raise self._error("could not find expected ':'", key.mark)
            key.possible = False
            return False
        return True

    def _save_simple_key(self) -> None:
        required = self.flow_level == 0 and self.indent == self.col
        if self.simple_key_allowed:
            key = _SimpleKey(
                True,
                required,
                self.tokens_parsed + (len(self.tokens) - self.tokens_head),
                self.mark,
            )
            self._remove_simple_key()
            self.simple_keys[-1] = key
            self.simple_keys_by_tok[key.token_number] = len(self.simple_keys) - 1

    def _remove_simple_key(self) -> None:
        key = self.simple_keys[-1]
        if key.possible:
            if key.required:
                raise self._error("could not find expected ':'", key.mark)
            key.possible = False
            self.simple_keys_by_tok.pop(key.token_number, None)

    def _increase_flow_level(self) -> None:
        self.simple_keys.append(
            _SimpleKey(False, False, self.tokens_parsed + (len(self.tokens) - self.tokens_head),
                       self.mark)
        )
        self.flow_level += 1
        if self.flow_level > MAX_FLOW_LEVEL:
            raise LimitError(f"yaml: line {self.line + 1}: exceeded max depth of {MAX_FLOW_LEVEL}")

    def _decrease_flow_level(self) -> None:
        if self.flow_level > 0:
            self.flow_level -= 1
            key = self.simple_keys.pop()
            self.simple_keys_by_tok.pop(key.token_number, None)

    # -- indentation --------------------------------------------------------------

    def _roll_indent(self, column: int, number: int, type_: int, mark: Mark) -> None:
        if self.flow_level > 0:
            return
        if self.indent < column:
            self.indents.append(self.indent)
            self.indent = column
            if len(self.indents) > MAX_INDENTS:
                raise LimitError(f"yaml: line {mark[1] + 1}: exceeded max depth of {MAX_INDENTS}")
            token = Token(type_, mark, mark)
            if number > -1:
                number -= self.tokens_parsed
            self._insert_token(number, token)

    def _unroll_indent(self, column: int, scan_mark: Mark) -> None:
        if self.flow_level > 0:
            return
        block_mark = (scan_mark[0] - 1, scan_mark[1], scan_mark[2])
        while self.indent > column:
            # Place the end token before foot comments of parent blocks: look
            # back for recent comments at the indent of the block ending now.
            stop_index = block_mark[0]
            for i in range(len(self.comments) - 1, -1, -1):
                c = self.comments[i]
                if c.end_mark[0] < stop_index:
                    break
                if c.start_mark[2] == self.indent + 1:
                    block_mark = c.start_mark
                stop_index = c.scan_mark[0]
            self._insert_token(-1, Token(BLOCK_END, block_mark, block_mark))
            self.indent = self.indents.pop()

    # -- fetchers -----------------------------------------------------------------

    def _fetch_stream_start(self) -> None:
        self.indent = -1
        self.simple_keys.append(_SimpleKey(False, False, 0, (0, 0, 0)))
        self.simple_key_allowed = True
        self.stream_start_produced = True
        self._insert_token(-1, Token(STREAM_START, self.mark, self.mark))

    def _fetch_stream_end(self) -> None:
        if self.col != 0:
            self.col = 0
            self.line += 1
        self._unroll_indent(-1, self.mark)
        self._remove_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, Token(STREAM_END, self.mark, self.mark))

    def _fetch_directive(self) -> None:
        self._unroll_indent(-1, self.mark)
        self._remove_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, self._scan_directive())

    def _fetch_document_indicator(self, type_: int) -> None:
        self._unroll_indent(-1, self.mark)
        self._remove_simple_key()
        self.simple_key_allowed = False
        start = self.mark
        self._skip_n(3)
        self._insert_token(-1, Token(type_, start, self.mark))

    def _fetch_flow_collection_start(self, type_: int) -> None:
        self._save_simple_key()
        self._increase_flow_level()
        self.simple_key_allowed = True
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(type_, start, self.mark))

    def _fetch_flow_collection_end(self, type_: int) -> None:
        self._remove_simple_key()
        self._decrease_flow_level()
        self.simple_key_allowed = False
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(type_, start, self.mark))

    def _fetch_flow_entry(self) -> None:
        self._remove_simple_key()
        self.simple_key_allowed = True
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(FLOW_ENTRY, start, self.mark))

    def _fetch_block_entry(self) -> None:
        if self.flow_level == 0:
            if not self.simple_key_allowed:
                raise self._error("block sequence entries are not allowed in this context")
            self._roll_indent(self.col, -1, BLOCK_SEQUENCE_START, self.mark)
        self._remove_simple_key()
        self.simple_key_allowed = True
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(BLOCK_ENTRY, start, self.mark))

    def _fetch_key(self) -> None:
        if self.flow_level == 0:
            if not self.simple_key_allowed:
                raise self._error("mapping keys are not allowed in this context")
            self._roll_indent(self.col, -1, BLOCK_MAPPING_START, self.mark)
        self._remove_simple_key()
        self.simple_key_allowed = self.flow_level == 0
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(KEY, start, self.mark))

    def _fetch_value(self) -> None:
        key = self.simple_keys[-1]
        if self._simple_key_is_valid(key):
            self._insert_token(
                key.token_number - self.tokens_parsed, Token(KEY, key.mark, key.mark)
            )
            self._roll_indent(key.mark[2], key.token_number, BLOCK_MAPPING_START, key.mark)
            key.possible = False
            self.simple_keys_by_tok.pop(key.token_number, None)
            self.simple_key_allowed = False
        else:
            if self.flow_level == 0:
                if not self.simple_key_allowed:
                    raise self._error("mapping values are not allowed in this context")
                self._roll_indent(self.col, -1, BLOCK_MAPPING_START, self.mark)
            self.simple_key_allowed = self.flow_level == 0
        start = self.mark
        self._skip()
        self._insert_token(-1, Token(VALUE, start, self.mark))

    def _fetch_anchor(self, type_: int) -> None:
        self._save_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, self._scan_anchor(type_))

    def _fetch_tag(self) -> None:
        self._save_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, self._scan_tag())

    def _fetch_block_scalar(self, *, literal: bool) -> None:
        self._remove_simple_key()
        self.simple_key_allowed = True
        self._insert_token(-1, self._scan_block_scalar(literal))

    def _fetch_flow_scalar(self, *, single: bool) -> None:
        self._save_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, self._scan_flow_scalar(single))

    def _fetch_plain_scalar(self) -> None:
        self._save_simple_key()
        self.simple_key_allowed = False
        self._insert_token(-1, self._scan_plain_scalar())

    # -- whitespace and comments ------------------------------------------------------

    def _scan_to_next_token(self) -> None:
        scan_mark = self.mark
        s = self.s
        while True:
            # Tabs are allowed in flow context and after an indicator that
            # forbids a simple key; spaces always.
            if self.flow_level > 0 or not self.simple_key_allowed:
                n = _end(_BLANKS, s, self.pos) - self.pos
            else:
                n = _end(_SPACES, s, self.pos) - self.pos
            if n:
                self.pos += n
                self.col += n

            # A line comment under a sequence entry that heads the following
            # content ("- # comment" then "  - data") becomes a head comment.
            if self.comments and len(self.tokens) > 1:
                a = self.tokens[-2]
                b = self.tokens[-1]
                c = self.comments[-1]
                if (
                    a.type == BLOCK_SEQUENCE_START
                    and b.type == BLOCK_ENTRY
                    and c.line
                    and s[self.pos] not in _BREAKS
                ):
                    c.head = c.line
                    c.line = ""
                    if c.start_mark[1] == self.line - 1:
                        c.token_mark = self.mark

            if s[self.pos] == "#":
                self._scan_comments(scan_mark)

            if s[self.pos] in _BREAKS:
                self._skip_line()
                if self.flow_level == 0:
                    self.simple_key_allowed = True
            else:
                break

    def _scan_line_comment(self, token_mark: Mark) -> None:
        """Record a comment that ends the current line as a line comment."""
        if self.newlines > 0:
            return
        s = self.s
        p = _end(_BLANKS, s, self.pos)
        if s[p] != "#":
            return
        # Consume up to and including the comment text (not the line break).
        start_mark = (p, self.line, self.col + (p - self.pos))
        end = _end(_TO_BREAKZ, s, p)
        text = s[p:end]
        self.newlines = 0
        self.col += end - self.pos
        self.pos = end
        if text:
            self.comments.append(
                Comment((0, 0, 0), token_mark, start_mark, (0, 0, 0), line=text)
            )

    def _scan_comments(self, scan_mark: Mark) -> None:
        """Collect own-line comments, split into feet of prior content and heads of next."""
        s = self.s
        token = self.tokens[-1]
        if token.type == FLOW_ENTRY and len(self.tokens) > 1:
            token = self.tokens[-2]
        token_mark = token.start
        start_mark: Mark = (0, 0, 0)
        next_indent = max(self.indent, 0)
        recent_empty = False
        first_empty = self.newlines <= 1
        line = self.line
        column = self.col
        text: list[str] = []

        # The foot line is where a comment must start to still be a foot of
        # the prior content (the line below it).
        foot_line = -1
        if scan_mark[1] > 0:
            foot_line = self.line - self.newlines + 1
            if self.newlines == 0 and self.col > 1:
                foot_line += 1

        peek = 0
        while peek < 512:
            i = self.pos + peek
            c = s[i]
            column += 1
            if c in " \t":
                peek += 1
                continue
            close_flow = self.flow_level > 0 and c in "]}"
            if close_flow or c in _BREAKZ:
                if close_flow or not recent_empty:
                    if close_flow or (
                        first_empty
                        and (
                            (start_mark[1] == foot_line and token.type != VALUE)
                            or start_mark[2] - 1 < next_indent
                        )
                    ):
                        # The first empty line after the prior content: what
                        # was read so far is a foot of that content.
                        if text:
                            if start_mark[2] - 1 < next_indent:
                                token_mark = start_mark  # dedented: unrelated
                            end = (i, line, column)
                            self.comments.append(
                                Comment(scan_mark, token_mark, start_mark, end,
                                        foot="".join(text))
                            )
                            scan_mark = end
                            token_mark = scan_mark
                            text = []
                    elif text and c != "\0":
                        text.append("\n")
                if c not in _BREAKS:
                    break
                first_empty = False
                recent_empty = True
                column = 0
                line += 1
                peek += 1
                continue

            if text and (close_flow or (column - 1 < next_indent and column != start_mark[2])):
                # A comment at a different indentation is a foot of the
                # preceding data rather than a head of what follows.
                end = (i, line, column)
                self.comments.append(
                    Comment(scan_mark, token_mark, start_mark, end, foot="".join(text))
                )
                scan_mark = end
                token_mark = scan_mark
                text = []

            if c != "#":
                break

            if not text:
                start_mark = (i, line, column)
            else:
                text.append("\n")
            recent_empty = False

            # Consume everything up to the end of this comment line.
            self._consume_through(i)
            stop = _end(_TO_BREAKZ, s, self.pos)
            text.append(s[self.pos:stop])
            self.newlines = 0
            self.col += stop - self.pos
            self.pos = stop

            # As in go-yaml, the character after the comment (its line
            # break) is stepped over without counting as an empty line, and
            # ``line`` stays on the comment's line.
            peek = 1
            column = 0
            line = self.line
            next_indent = max(self.indent, 0)

        if text:
            self.comments.append(
                Comment(scan_mark, start_mark, start_mark,
                        (self.pos + peek - 1, line, column), head="".join(text))
            )

    def _consume_through(self, target: int) -> None:
        """Advance to index ``target`` (a '#'), skipping blanks and line breaks."""
        s = self.s
        while self.pos < target:
            if s[self.pos] in _BREAKS:
                self._skip_line()
            else:
                self._skip()

    # -- directives, anchors, tags ------------------------------------------------

    def _scan_directive(self) -> Token:
        start = self.mark
        self._skip()
        name = self._scan_alpha()
        if not name:
            raise self._error("could not find expected directive name", start)
        if self.s[self.pos] not in _BLANKZ:
            raise self._error("found unexpected non-alphabetical character", start)
        if name == "YAML":
            self._skip_blanks()
            major = self._scan_version_number(start)
            if self.s[self.pos] != ".":
                raise self._error("did not find expected digit or '.' character", start)
            self._skip()
            minor = self._scan_version_number(start)
            token = Token(VERSION_DIRECTIVE, start, self.mark)
            token.major, token.minor = major, minor
        elif name == "TAG":
            self._skip_blanks()
            handle = self._scan_tag_handle(directive=True, start=start)
            if self.s[self.pos] not in " \t":
                raise self._error("did not find expected whitespace", start)
            self._skip_blanks()
            prefix = self._scan_tag_uri(directive=True, head="", start=start)
            if self.s[self.pos] not in _BLANKZ:
                raise self._error("did not find expected whitespace or line break", start)
            token = Token(TAG_DIRECTIVE, start, self.mark, handle)
            token.prefix = prefix
        else:
            raise self._error("found unknown directive name", start)
        self._skip_blanks()
        if self.s[self.pos] == "#":
            end = _end(_TO_BREAKZ, self.s, self.pos)
            self._skip_n(end - self.pos)
        if self.s[self.pos] not in _BREAKZ:
            raise self._error("did not find expected comment or line break", start)
        self._skip_line()
        return token

    def _skip_blanks(self) -> None:
        n = _end(_BLANKS, self.s, self.pos) - self.pos
        self.pos += n
        self.col += n

    def _scan_alpha(self) -> str:
        end = _end(_ALPHA, self.s, self.pos)
        out = self.s[self.pos:end]
        if out:
            self._skip_n(end - self.pos)
        return out

    def _scan_version_number(self, start: Mark) -> int:
        digits = ""
        while self.s[self.pos].isascii() and self.s[self.pos].isdigit():
            digits += self.s[self.pos]
            if len(digits) > 2:
                raise self._error("found extremely long version number", start)
            self._skip()
        if not digits:
            raise self._error("did not find expected version number", start)
        return int(digits)

    def _scan_anchor(self, type_: int) -> Token:
        start = self.mark
        self._skip()
        value = self._scan_alpha()
        end = self.mark
        if not value or self.s[self.pos] not in _BLANKZ + "?:,]}%@`":
            what = "an anchor" if type_ == ANCHOR else "an alias"
            raise self._error(
                f"while scanning {what}: did not find expected alphabetic or numeric character",
                start,
            )
        return Token(type_, start, end, value)

    def _scan_tag(self) -> Token:
        start = self.mark
        s = self.s
        if s[self.pos + 1] == "<":
            handle = ""
            self._skip_n(2)
            suffix = self._scan_tag_uri(directive=False, head="", start=start)
            if s[self.pos] != ">":
                raise self._error("while scanning a tag: did not find the expected '>'", start)
            self._skip()
        else:
            handle = self._scan_tag_handle(directive=False, start=start)
            if handle[0] == "!" and len(handle) > 1 and handle[-1] == "!":
                suffix = self._scan_tag_uri(directive=False, head="", start=start)
            else:
                suffix = self._scan_tag_uri(directive=False, head=handle, start=start)
                handle = "!"
                if not suffix:
                    handle, suffix = suffix, handle
        if s[self.pos] not in _BLANKZ:
            raise self._error(
                "while scanning a tag: did not find expected whitespace or line break", start
            )
        token = Token(TAG, start, self.mark, handle)
        token.suffix = suffix
        return token

    def _scan_tag_handle(self, *, directive: bool, start: Mark) -> str:
        if self.s[self.pos] != "!":
            raise self._error("did not find expected '!'", start)
        self._skip()
        out = "!" + self._scan_alpha()
        if self.s[self.pos] == "!":
            self._skip()
            out += "!"
        elif directive and out != "!":
            raise self._error("did not find expected '!'", start)
        return out

    def _scan_tag_uri(self, *, directive: bool, head: str, start: Mark) -> str:
        out = head[1:] if len(head) > 1 else ""
        has_tag = bool(head)
        s = self.s
        while True:
            end = _end(_URI, s, self.pos)
            if end > self.pos:
                out += s[self.pos:end]
                self._skip_n(end - self.pos)
                has_tag = True
            if s[self.pos] != "%":
                break
            out += self._scan_uri_escapes(start)
            has_tag = True
        if not has_tag:
            raise self._error("did not find expected tag URI", start)
        return out

    def _scan_uri_escapes(self, start: Mark) -> str:
        s = self.s
        octets = bytearray()
        width = 1024
        while width > 0:
            p = self.pos
            h = s[p + 1:p + 3]
            if s[p] != "%" or len(h) != 2 or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise self._error("did not find URI escaped octet", start)
            octet = int(h, 16)
            if width == 1024:
                width = (1 if octet & 0x80 == 0 else 2 if octet & 0xE0 == 0xC0
                         else 3 if octet & 0xF0 == 0xE0 else 4 if octet & 0xF8 == 0xF0 else 0)
                if width == 0:
                    raise self._error("found an incorrect leading UTF-8 octet", start)
            elif octet & 0xC0 != 0x80:
                raise self._error("found an incorrect trailing UTF-8 octet", start)
            octets.append(octet)
            self._skip_n(3)
            width -= 1
        try:
            return octets.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error("found an incorrect UTF-8 sequence", start) from None

    # -- scalars --------------------------------------------------------------------

    def _scan_block_scalar(self, literal: bool) -> Token:
        s = self.s
        start = self.mark
        self._skip()
        chomping = 0
        increment = 0
        c = s[self.pos]
        if c in "+-":
            chomping = 1 if c == "+" else -1
            self._skip()
            if s[self.pos] in "0123456789":
                if s[self.pos] == "0":
                    raise self._error("found an indentation indicator equal to 0", start)
                increment = int(s[self.pos])
                self._skip()
        elif c in "0123456789":
            if c == "0":
                raise self._error("found an indentation indicator equal to 0", start)
            increment = int(c)
            self._skip()
            if s[self.pos] in "+-":
                chomping = 1 if s[self.pos] == "+" else -1
                self._skip()

        self._skip_blanks()
        if s[self.pos] == "#":
            self._scan_line_comment(start)
            end = _end(_TO_BREAKZ, s, self.pos)
            if end > self.pos:
                self._skip_n(end - self.pos)
        if s[self.pos] not in _BREAKZ:
            raise self._error(
                "while scanning a block scalar: did not find expected comment or line break",
                start,
            )
        self._skip_line()
        end_mark = self.mark

        indent = 0
        if increment:
            indent = self.indent + increment if self.indent >= 0 else increment

        out: list[str] = []
        leading_break = ""
        indent, trailing_breaks, end_mark = self._scan_block_scalar_breaks(indent, start, end_mark)
        leading_blank = False
        while self.col == indent and s[self.pos] != "\0":
            trailing_blank = s[self.pos] in " \t"
            if not literal and not leading_blank and not trailing_blank and leading_break == "\n":
                if not trailing_breaks:
                    out.append(" ")
            else:
                out.append(leading_break)
            leading_break = ""
            out.append(trailing_breaks)
            leading_blank = s[self.pos] in " \t"
            end = _end(_TO_BREAKZ, s, self.pos)
            if end > self.pos:
                out.append(s[self.pos:end])
                if s[self.pos:end].strip(" \t"):
                    self.newlines = 0
                self.col += end - self.pos
                self.pos = end
            leading_break = self._read_line()
            indent, trailing_breaks, end_mark = self._scan_block_scalar_breaks(
                indent, start, end_mark
            )
        if chomping != -1:
            out.append(leading_break)
        if chomping == 1:
            out.append(trailing_breaks)
        return Token(SCALAR, start, end_mark, "".join(out), LITERAL if literal else FOLDED)

    def _scan_block_scalar_breaks(
        self, indent: int, start: Mark, end_mark: Mark
    ) -> tuple[int, str, Mark]:
        s = self.s
        breaks: list[str] = []
        end_mark = self.mark
        max_indent = 0
        while True:
            while (indent == 0 or self.col < indent) and s[self.pos] == " ":
                self.pos += 1
                self.col += 1
            max_indent = max(max_indent, self.col)
            if (indent == 0 or self.col < indent) and s[self.pos] == "\t":
                raise self._error(
                    "while scanning a block scalar: found a tab character where an "
                    "indentation space is expected",
                    start,
                )
            if s[self.pos] not in _BREAKS:
                break
            breaks.append(self._read_line())
            end_mark = self.mark
        if indent == 0:
            indent = max(max_indent, self.indent + 1, 1)
        return indent, "".join(breaks), end_mark

    def _scan_flow_scalar(self, single: bool) -> Token:
        s = self.s
        start = self.mark
        self._skip()
        out: list[str] = []
        run = _SINGLE_RUN if single else _DOUBLE_RUN
        quote = "'" if single else '"'
        while True:
            p = self.pos
            if (
                self.col == 0
                and s[p:p + 3] in ("---", "...")
                and s[p + 3] in _BLANKZ
            ):
                raise self._error(
                    "while scanning a quoted scalar: found unexpected document indicator", start
                )
            if s[p] == "\0":
                raise self._error(
                    "while scanning a quoted scalar: found unexpected end of stream", start
                )
            leading_blanks = False
            while s[self.pos] not in _BLANKZ:
                m = run.match(s, self.pos)
                if m is not None:
                    out.append(m.group())
                    self._skip_n(m.end() - self.pos)
                    continue
                c = s[self.pos]
                if single:
                    if s[self.pos + 1] == "'":
                        out.append("'")
                        self._skip_n(2)
                        continue
                    break  # the closing quote
                if c == '"':
                    break
                # A backslash.
                n = s[self.pos + 1]
                if n in _BREAKS:
                    self._skip()
                    self._skip_line()
                    leading_blanks = True
                    break
                if n in _ESCAPES:
                    out.append(_ESCAPES[n])
                    self._skip_n(2)
                elif n in _HEX_LEN:
                    length = _HEX_LEN[n]
                    self._skip_n(2)
                    digits = s[self.pos:self.pos + length]
                    if len(digits) != length or not all(
                        ch in "0123456789abcdefABCDEF" for ch in digits
                    ):
                        raise self._error(
                            "while parsing a quoted scalar: did not find expected "
                            "hexdecimal number",
                            start,
                        )
                    value = int(digits, 16)
                    if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                        raise self._error(
                            "while parsing a quoted scalar: found invalid Unicode "
                            "character escape code",
                            start,
                        )
                    out.append(chr(value))
                    self._skip_n(length)
                else:
                    raise self._error(
                        "while parsing a quoted scalar: found unknown escape character", start
                    )
            if s[self.pos] == quote:
                break
            # Blanks and line breaks between words.
            whitespaces: list[str] = []
            leading_break = ""
            trailing_breaks: list[str] = []
            while s[self.pos] in " \t" or s[self.pos] in _BREAKS:
                if s[self.pos] in " \t":
                    if not leading_blanks:
                        whitespaces.append(s[self.pos])
                    self.pos += 1
                    self.col += 1
                elif not leading_blanks:
                    whitespaces = []
                    leading_break = self._read_line()
                    leading_blanks = True
                else:
                    trailing_breaks.append(self._read_line())
            if leading_blanks:
                if leading_break == "\n":
                    out.append("".join(trailing_breaks) if trailing_breaks else " ")
                else:
                    out.append(leading_break)
                    out.append("".join(trailing_breaks))
            else:
                out.append("".join(whitespaces))
        self._skip()
        return Token(SCALAR, start, self.mark, "".join(out),
                     SINGLE_QUOTED if single else DOUBLE_QUOTED)

    def _scan_plain_scalar(self) -> Token:
        s = self.s
        out: list[str] = []
        leading_blanks = False
        leading_break = ""
        trailing_breaks: list[str] = []
        whitespaces: list[str] = []
        indent = self.indent + 1
        start = self.mark
        end_mark = start
        run = _PLAIN_FLOW if self.flow_level > 0 else _PLAIN_BLOCK
        while True:
            p = self.pos
            if self.col == 0 and s[p:p + 3] in ("---", "...") and s[p + 3] in _BLANKZ:
                break
            if s[p] == "#":
                break
            m = run.match(s, p)
            if m is not None:
                if leading_blanks:
                    if leading_break == "\n":
                        out.append("".join(trailing_breaks) if trailing_breaks else " ")
                    else:
                        out.append(leading_break)
                        out.append("".join(trailing_breaks))
                    trailing_breaks = []
                    leading_break = ""
                    leading_blanks = False
                elif whitespaces:
                    out.append("".join(whitespaces))
                    whitespaces = []
                out.append(m.group())
                self._skip_n(m.end() - p)
                end_mark = self.mark
            c = s[self.pos]
            if c not in " \t" and c not in _BREAKS:
                break
            while s[self.pos] in " \t" or s[self.pos] in _BREAKS:
                c = s[self.pos]
                if c in " \t":
                    if leading_blanks and self.col < indent and c == "\t":
                        raise self._error(
                            "while scanning a plain scalar: found a tab character that "
                            "violates indentation",
                            start,
                        )
                    if not leading_blanks:
                        whitespaces.append(c)
                    self.pos += 1
                    self.col += 1
                elif not leading_blanks:
                    whitespaces = []
                    leading_break = self._read_line()
                    leading_blanks = True
                else:
                    trailing_breaks.append(self._read_line())
            if self.flow_level == 0 and self.col < indent:
                break
        token = Token(SCALAR, start, end_mark, "".join(out), PLAIN)
        if leading_blanks:
            self.simple_key_allowed = True
        return token
