"""Tree paths (``["db"]["hosts"][0]``): parse them, and read, set or remove what they name.

The syntax and the semantics are sops's (``--extract``, ``set``, ``unset``):
the text is split on ``[``; every piece must end with ``]``; a piece that
starts with a quote is a key (first and last character dropped, no
escapes), anything else an index. Setting a missing key creates it (and the
maps and lists on the way); an index past the end appends.
"""

from __future__ import annotations

from ..errors import PathError
from .tree import Branch

__all__ = ["Path", "get_path", "parse_path", "set_path", "unset_path"]

Path = list[str | int]


def parse_path(text: str) -> Path:
    """Parse ``["a"][0]['b']`` into ``["a", 0, "b"]``.

    Raises ``PathError`` (sops's exit 91) for text that is not a path.
    """
    if text == "":
        return []
    pieces = text.split("[")
    if pieces[0] != "":
        raise PathError(f"invalid tree path: component {pieces[0]} doesn't end with ]")
    out: Path = []
    for piece in pieces[1:]:
        if not piece.endswith("]"):
            raise PathError(f"invalid tree path: component {piece} doesn't end with ]")
        body = piece[:-1]
        if body[:1] in ("'", '"'):
            if len(body) < 2:
                raise PathError(f"invalid tree path: component {piece} is not a quoted key")
            out.append(body[1:-1])
        else:
            try:
                out.append(int(body))
            except ValueError:
                raise PathError(
                    f"invalid tree path: component {piece} is neither a quoted key nor an index"
                ) from None
            if out[-1] < 0:  # type: ignore[operator]
                raise PathError(f"invalid tree path: negative index {body}")
    return out


def get_path(branch: Branch, path: Path) -> object:
    """Return what ``path`` names in ``branch`` (sops's ``Truncate``).

    Raises ``PathError`` when a component is missing or of the wrong kind.
    """
    current: object = branch
    for component in path:
        if isinstance(component, str):
            if not isinstance(current, Branch):
                raise PathError(f"component ['{component}'] not found")
            i = current.index_of(component)
            if i < 0:
                raise PathError(f"component ['{component}'] not found")
            current = current[i][1]
        else:
            if not isinstance(current, list) or isinstance(current, Branch):
                raise PathError(
                    f"component [{component}] is integer, but tree part is not a slice"
                )
            if component >= len(current):
                raise PathError(f"component [{component}] accesses out of bounds")
            current = current[component]
    return current


def _leaf(path: Path, value: object) -> object:
    """Build the nested maps and lists that lead from ``path`` to ``value``."""
    out = value
    for component in reversed(path):
        out = Branch([(component, out)]) if isinstance(component, str) else [out]
    return out


def set_path(branch: Branch, path: Path, value: object) -> bool:
    """Set ``path`` to ``value`` in place; return whether anything changed."""
    if not path:
        raise PathError("cannot set the root of the document")
    return _set(branch, path, value)[1]


def _set(node: object, path: Path, value: object) -> tuple[object, bool]:
    head = path[0]
    if isinstance(node, Branch):
        if isinstance(head, str):
            i = node.index_of(head)
            if i >= 0:
                if len(path) == 1:
                    changed = not _equal(node[i][1], value)
                    node[i] = (head, value)
                    return node, changed
                new, changed = _set(node[i][1], path[1:], value)
                node[i] = (head, new)
                return node, changed
            node.append((head, _leaf(path[1:], value)))
            return node, True
        return _leaf(path, value), True
    if isinstance(node, list) and isinstance(head, int):
        if len(path) == 1:
            if head >= len(node):
                node.append(value)
                return node, True
            changed = not _equal(node[head], value)
            node[head] = value
            return node, changed
        if head >= len(node):
            node.append(_leaf(path[1:], value))
            return node, True
        new, changed = _set(node[head], path[1:], value)
        node[head] = new
        return node, changed
    new_value = _leaf(path, value)
    return new_value, not _equal(node, new_value)


def unset_path(branch: Branch, path: Path) -> None:
    """Remove what ``path`` names. ``PathError`` when it is not there."""
    if not path:
        raise PathError("cannot unset the root of the document")
    _unset(branch, path)


def _unset(node: object, path: Path) -> None:
    head = path[0]
    if isinstance(node, Branch):
        i = node.index_of(head) if isinstance(head, str) else -1
        if i < 0:
            raise PathError(f"key not found: {head}")
        if len(path) == 1:
            del node[i]
        else:
            _unset(node[i][1], path[1:])
        return
    if isinstance(node, list):
        if not isinstance(head, int):
            raise PathError(f"key not found: {head}")
        if head >= len(node):
            raise PathError(f"index {head} out of bounds")
        if len(path) == 1:
            del node[head]
        else:
            _unset(node[head], path[1:])
        return
    raise PathError(f"unsupported type for item '{head}'")


def _equal(a: object, b: object) -> bool:
    if a.__class__ is not b.__class__:
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(  # type: ignore[arg-type]
            _equal(x, y) for x, y in zip(a, b, strict=False)  # type: ignore[call-overload]
        )
    if isinstance(a, tuple):
        return all(_equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[call-overload]
    return a == b
