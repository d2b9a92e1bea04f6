"""A scripted $EDITOR for the ``edit`` tests: ``python editor.py FILE``.

It records what it saw (path, modes, content) as JSON in ``$EDIT_LOG``, then
does ``$EDIT_ACTION`` to the file: ``noop``, ``replace`` (first ``$EDIT_OLD``
with ``$EDIT_NEW``; exit 3 when absent), ``write`` (``$EDIT_CONTENT``) or
``fail`` (exit 4 without touching it).
"""

from __future__ import annotations

import json
import os
import stat
import sys


def main() -> int:
    path = sys.argv[-1]
    with open(path, "rb") as f:
        content = f.read()
    folder = os.path.dirname(path)
    log = {
        "path": path,
        "argv": sys.argv[1:],
        "mode": stat.S_IMODE(os.stat(path).st_mode),
        "dir_mode": stat.S_IMODE(os.stat(folder).st_mode),
        "dir_entries": sorted(os.listdir(folder)),
        "content": content.decode("utf-8", "surrogateescape"),
    }
    with open(os.environ["EDIT_LOG"], "w", encoding="utf-8") as f:
        json.dump(log, f)
    action = os.environ.get("EDIT_ACTION", "noop")
    if action == "fail":
        return 4
    if action == "replace":
        old = os.environ["EDIT_OLD"].encode()
        if old not in content:
            return 3
        content = content.replace(old, os.environ["EDIT_NEW"].encode(), 1)
    elif action == "write":
        content = os.environ["EDIT_CONTENT"].encode()
    with open(path, "wb") as f:
        f.write(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
