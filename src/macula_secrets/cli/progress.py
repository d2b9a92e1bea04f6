"""Progress bars for long commands, on stderr, only when stderr is a terminal.

``rich`` is imported only when a bar is shown: scripts and pipes pay nothing,
and stdout (which may carry data) is never touched.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar"]


@contextlib.contextmanager
def progress_bar(label: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)``; draws a transient bar when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update
