"""Error messages and hints follow the rules of ``errors.py``, checked in the source.

Every ``raise`` (or construction) of a :class:`~macula_secrets.errors.MaculaError`
subclass, ``CommandError`` included, whose message is a literal or an f-string
must start lowercase, must not end with a period and must not be empty; its
hint (``hint=``, ``.hint = ...`` and ``..._hint``/``..._HINT`` constants) must
start lowercase and must not end with a period either. A message may start with
a placeholder, a flag (``--in-place``) or a word in capitals that is a name, not
a sentence start (``MAC``, ``TPM``, ``SOPS_AGE_KEY_FILE``, ``REPO``). Messages
built elsewhere (``str(exc)``, a variable assigned in the same function) are
followed as far as the assignments in that function or module go.

docs/errors.md lists these messages for people; this test keeps them in shape.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "macula_secrets"

# (module relative to src/macula_secrets, first characters of the text): why it may break a rule.
ALLOWED: dict[tuple[str, str], str] = {
    # None so far: add an entry here, with its reason, rather than weakening the checks.
}

# A first word in capitals is a name (acronym, environment variable, metavar), not a
# capitalised sentence: MAC, TLS, INI, JSON, TPM, HTTP, SOPS_AGE_KEY_FILE, REPO.
_NAME_WORD = re.compile(r"[A-Z][A-Z0-9_]+(?![a-z])")


@dataclass(frozen=True)
class Text:
    """One message or hint as far as the source shows it: its start and its end."""

    module: str
    line: int
    kind: str  # "message" or "hint"
    head: str | None  # literal text at the start; None when it starts with a placeholder
    tail: str | None  # literal text at the end; None when it ends with a placeholder
    empty: bool

    def problems(self) -> list[str]:
        found = []
        if self.empty:
            found.append("is empty")
        if self.head is not None and self.head[:1].isupper() and not _NAME_WORD.match(self.head):
            found.append(f"starts with a capital: {self.head[:30]!r}")
        if self.head is not None and self.head[:1].isspace():
            found.append("starts with white space")
        if self.tail is not None and self.tail.rstrip().endswith(".") and not (
                self.tail.rstrip().endswith("...")):
            found.append(f"ends with a period: {self.tail[-30:]!r}")
        return found


def _error_classes(trees: dict[str, ast.Module]) -> set[str]:
    """MaculaError and every class in src that derives from it, by name."""
    known = {"MaculaError"}
    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in known:
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                             for b in node.bases}
                    if bases & known:
                        known.add(node.name)
                        changed = True
    # Django's CommandError (integrations/django) shares the name; its messages are
    # read by people too, so they are held to the same rules.
    return known


def _ends(node: ast.expr) -> tuple[str | None, str | None, bool] | None:
    """(head, tail, empty) of a literal, an f-string or ``"..." + x``; None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, node.value, not node.value.strip()
    if isinstance(node, ast.JoinedStr):
        values = node.values
        if not values:
            return "", "", True
        first, last = values[0], values[-1]
        head = first.value if isinstance(first, ast.Constant) else None
        tail = last.value if isinstance(last, ast.Constant) else None
        assert head is None or isinstance(head, str)
        assert tail is None or isinstance(tail, str)
        return head, tail, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _ends(node.left), _ends(node.right)
        head = left[0] if left else None
        tail = right[1] if right else None
        return head, tail, False
    return None


class _Walker:
    def __init__(self, module: str, tree: ast.Module, classes: set[str]) -> None:
        self.module = module
        self.classes = classes
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self.tree = tree

    def _scope(self, node: ast.AST) -> ast.AST:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return self.tree

    def _assigned(self, name: str, where: ast.AST) -> Iterator[ast.expr]:
        """Values assigned to ``name`` in the enclosing function, else at module level."""
        for scope in (self._scope(where), self.tree):
            found = False
            for node in ast.walk(scope):
                if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = True
                    yield node.value
            if found:
                return

    def _texts(self, node: ast.expr, kind: str, seen: frozenset[str] = frozenset()
               ) -> Iterator[Text]:
        if isinstance(node, ast.IfExp):
            yield from self._texts(node.body, kind, seen)
            yield from self._texts(node.orelse, kind, seen)
            return
        if isinstance(node, ast.BoolOp):  # ``hint or None``
            for value in node.values:
                yield from self._texts(value, kind, seen)
            return
        if isinstance(node, ast.Name) and node.id not in seen:
            for value in self._assigned(node.id, node):
                yield from self._texts(value, kind, seen | {node.id})
            return
        ends = _ends(node)
        if ends is not None:
            yield Text(self.module, node.lineno, kind, *ends)

    def texts(self) -> list[Text]:
        """Each message and hint once (a hint constant is both assigned and passed)."""
        return list(dict.fromkeys(self._found()))

    def _found(self) -> Iterator[Text]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Name) and (
                    node.exc.id in self.classes):
                yield Text(self.module, node.lineno, "message", None, None, True)
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in self.classes:
                    message = node.args[0] if node.args else next(
                        (k.value for k in node.keywords if k.arg == "message"), None)
                    if message is None:
                        yield Text(self.module, node.lineno, "message", None, None, True)
                    else:
                        yield from self._texts(message, "message")
                for keyword in node.keywords:
                    if name in self.classes and keyword.arg == "hint":
                        yield from self._texts(keyword.value, "hint")
                    elif keyword.arg == "invalid":  # cli/editing.py: the message to raise
                        yield from self._texts(keyword.value, "message")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    label = (target.attr if isinstance(target, ast.Attribute)
                             else target.id if isinstance(target, ast.Name) else "")
                    if label.lower().endswith("hint"):
                        yield from self._texts(node.value, "hint")


@functools.cache
def _trees() -> dict[str, ast.Module]:
    return {path.relative_to(SRC).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(SRC.rglob("*.py"))}


@functools.cache
def _all_texts() -> list[Text]:
    trees = _trees()
    classes = _error_classes(trees)
    return [text for module, tree in trees.items()
            for text in _Walker(module, tree, classes).texts()]


def _violations(texts: list[Text]) -> list[str]:
    out: list[str] = []
    for text in texts:
        start = text.head or text.tail or ""
        if any(text.module == module and start.startswith(prefix)
               for module, prefix in ALLOWED):
            continue
        out.extend(f"{text.module}:{text.line}: {text.kind} {problem}"
                   for problem in text.problems())
    return out


def test_error_messages_and_hints_follow_the_rules() -> None:
    texts = _all_texts()
    assert len([t for t in texts if t.kind == "message"]) > 400, "the walker finds too little"
    assert len([t for t in texts if t.kind == "hint"]) > 150, "the walker finds too few hints"
    assert _violations(texts) == []


def test_allowlist_entries_are_still_needed() -> None:
    texts = _all_texts()
    for module, prefix in ALLOWED:
        matching = [t for t in texts if t.module == module
                    and (t.head or t.tail or "").startswith(prefix)]
        assert matching and any(t.problems() for t in matching), (module, prefix)


def test_the_check_catches_planted_violations() -> None:
    source = '''
from macula_secrets.errors import ConfigError, MaculaError

class LocalError(ConfigError):
    pass

_HINT = "Use the other one."

def f(path, n):
    raise ConfigError(f"Cannot read {path}.")
    raise LocalError("")
    raise MaculaError(f"{path} is broken.", hint=_HINT)
    raise ConfigError("TLS to {path} is off" if n else "Oops", hint=f"run it {n} times.")
    raise ConfigError("fine", hint="ok...")
'''
    tree = ast.parse(source)
    classes = _error_classes({**_trees(), "planted.py": tree})
    texts = _Walker("planted.py", tree, classes).texts()
    problems = _violations(texts)
    assert any("starts with a capital: 'Cannot read '" in p for p in problems)
    assert any("ends with a period: '.'" in p for p in problems)
    assert any("is empty" in p for p in problems)
    assert any("ends with a period: ' is broken.'" in p for p in problems)
    assert any("hint starts with a capital: 'Use the other one.'" in p for p in problems)
    assert any("starts with a capital: 'Oops'" in p for p in problems)
    assert any("hint ends with a period: ' times.'" in p for p in problems)
    assert not any("TLS" in p or "ok..." in p for p in problems)
    assert len(problems) == 8, problems
