"""YAML nodes and the style constants shared by the reader and the writers.

Kept apart from the full parser and emitter so that the fast paths (which
need only these) do not load them.
"""

from __future__ import annotations

from typing import Final

# Scalar styles (of tokens and events).
PLAIN: Final = 1
SINGLE_QUOTED: Final = 2
DOUBLE_QUOTED: Final = 3
LITERAL: Final = 4
FOLDED: Final = 5

# Node kinds.
DOCUMENT: Final = 1
SEQUENCE: Final = 2
MAPPING: Final = 3
SCALAR: Final = 4
ALIAS: Final = 5

# Node styles (bit flags, as go-yaml's).
TAGGED_STYLE: Final = 1
DOUBLE_QUOTED_STYLE: Final = 2
SINGLE_QUOTED_STYLE: Final = 4
LITERAL_STYLE: Final = 8
FOLDED_STYLE: Final = 16
FLOW_STYLE: Final = 32


class Node:
    """A YAML node as go-yaml's ``yaml.Node`` holds it (the fields sops reads)."""

    __slots__ = (
        "alias",
        "anchor",
        "column",
        "content",
        "foot_comment",
        "head_comment",
        "kind",
        "line",
        "line_comment",
        "style",
        "tag",
        "value",
    )

    def __init__(self, kind: int, tag: str = "", value: str = "", style: int = 0) -> None:
        self.kind = kind
        self.tag = tag
        self.value = value
        self.style = style
        self.anchor = ""
        self.alias: Node | None = None
        self.content: list[Node] = []
        self.head_comment = ""
        self.line_comment = ""
        self.foot_comment = ""
        self.line = 0
        self.column = 0
