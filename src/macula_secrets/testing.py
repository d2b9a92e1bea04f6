"""Helpers for testing code that uses macula-secrets, and for testing a new backend.

Public API. :func:`exercise_backend` is the conformance check every backend
passes (``tests/backends/`` calls it for each one); a third-party backend
can call it from its own tests::

    from macula_secrets.testing import exercise_backend

    def test_my_backend(tmp_path):
        exercise_backend(lambda: MyBackend(tmp_path), app="conformance")

It asserts the behaviour callers rely on (absent keys read as ``None``,
writes are read back, deletes hide a key, listings are sorted, values are
text up to any size the backend accepts, names are checked) and returns
nothing; a failed expectation raises ``AssertionError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["exercise_backend"]

_VALUES = ("plain", "", "multi\nline\n", "unicode: zażółć ✓", "x" * 4096, " spaces ")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def exercise_backend(factory: Callable[[], Backend], *, app: str = "conformance",
                     versioned: bool | None = None) -> None:
    """Run the backend conformance checks against fresh instances from ``factory``.

    ``factory`` must return a backend whose ``app`` can be written to and
    starts empty (for a file backend: an app file that exists with no keys,
    or whatever makes ``put`` possible). ``versioned`` says whether
    ``put`` returns increasing versions and ``versions`` lists them; by
    default it is inferred from the first ``put``.
    """
    backend = factory()
    try:
        _check(backend.get(app, "absent") is None, "an absent key reads as None")
        _check("absent" not in backend.list(app), "an absent key is not listed")
        first = backend.put(app, "k1", "v1")
        is_versioned = first > 0 if versioned is None else versioned
        _check(backend.get(app, "k1") == "v1", "a put is read back")
        second = backend.put(app, "k1", "v2")
        _check(backend.get(app, "k1") == "v2", "a second put replaces the value")
        if is_versioned:
            _check(second == first + 1, "versions are dense: put returns N+1")
            _check(backend.get(app, "k1", version=first) == "v1",
                   "an older version stays readable")
            history = backend.versions(app, "k1")
            _check([v.version for v in history] == [first, second],
                   "versions lists every kept version, oldest first")
            _check(history[-1].current and not history[0].current,
                   "only the latest version is current")
        for i, value in enumerate(_VALUES):
            backend.put(app, f"value{i}", value)
        for i, value in enumerate(_VALUES):
            _check(backend.get(app, f"value{i}") == value,
                   f"value {i} ({len(value)} characters) is read back exactly")
        listed = backend.list(app)
        _check(listed == sorted(listed), "list is sorted")
        _check({"k1", *(f"value{i}" for i in range(len(_VALUES)))} <= set(listed),
               "list names every live key")
        everything = backend.load_all(app)
        _check(everything.get("k1") == "v2" and everything.get("value0") == "plain",
               "load_all returns the latest values")
        backend.delete(app, "k1")
        _check(backend.get(app, "k1") is None, "a deleted key reads as None")
        _check("k1" not in backend.list(app), "a deleted key is not listed")
        _check("k1" not in backend.load_all(app), "a deleted key is not loaded")
        try:
            backend.delete(app, "never-there")
        except NotFoundError:
            pass
        else:
            raise AssertionError("deleting an absent key raises NotFoundError")
        for bad in ("../escape", "a/b", "", "nul\x00byte"):
            try:
                backend.put(app, bad, "x")
            except ConfigError:
                continue
            raise AssertionError(f"the key name {bad!r} is refused with ConfigError")
        _check(app in backend.apps(), "apps() names an app that has keys")
    finally:
        backend.close()
    # A fresh instance sees what the first one wrote: the data is persistent.
    again = factory()
    try:
        _check(again.get(app, "value0") == "plain", "a new instance reads what was written")
        _check(again.get(app, "k1") is None, "a new instance does not see a deleted key")
    finally:
        again.close()
