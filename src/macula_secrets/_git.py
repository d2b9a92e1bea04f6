"""Reading a git repository without a checkout: the few plumbing calls sync and diff need.

Secrets are read at a commit (``sync --git REPO --rev REV``, ``diff
REV:path``) straight from git's object store, so no working tree is
touched, nothing is left half-updated by a failed pull, and the commit a
value came from is known exactly. The ``git`` binary does the work
(``rev-parse``, ``ls-tree``, ``cat-file``, ``merge-base``): its object
format, packs, alternates and partial clones are its business, not ours.

Errors are :class:`GitError` (a :class:`~macula_secrets.errors.ConfigError`)
with git's own first line of stderr, which never holds file contents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import NamedTuple

from .errors import ConfigError

__all__ = ["GitError", "TreeEntry", "git_binary", "is_ancestor", "list_tree", "read_blob",
           "resolve_commit", "show"]


class GitError(ConfigError):
    """git refused: no such repository, revision or path, or git is not installed."""


class TreeEntry(NamedTuple):
    """One file of a tree: its name inside the listed folder, mode and blob id."""

    name: str
    mode: str
    blob: str


def git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed", hint="apt install git")
    return found


def _git(repo: str, args: Sequence[str], *, what: str) -> bytes:
    """Run ``git -C repo args``; its stdout, or a :class:`GitError` about ``what``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run([git_binary(), "-C", repo, *args], capture_output=True,
                              env=env, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        raise GitError(f"git timed out reading {what}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[0].removeprefix("fatal: ") if lines else f"exit {done.returncode}"
        raise GitError(f"cannot read {what} from {repo}: {detail}")
    return done.stdout


def resolve_commit(repo: str, rev: str) -> str:
    """The full commit id ``rev`` names (a branch, tag, short id, ``HEAD~2``)."""
    if not rev or rev.startswith("-"):
        raise GitError(f"bad revision {rev!r}")
    out = _git(repo, ["rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"],
               what=f"revision {rev!r}")
    return out.decode("ascii").strip()


def is_ancestor(repo: str, older: str, newer: str) -> bool:
    """Whether commit ``older`` is ``newer`` or one of its ancestors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run([git_binary(), "-C", repo, "merge-base", "--is-ancestor",
                           older, newer], capture_output=True, env=env, check=False,
                          timeout=60)
    if done.returncode in (0, 1):
        return done.returncode == 0
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    raise GitError(f"cannot compare commits in {repo}: "
                   f"{lines[0].removeprefix('fatal: ') if lines else done.returncode}")


def list_tree(repo: str, commit: str, folder: str) -> list[TreeEntry]:
    """The files directly in ``folder`` at ``commit`` (no sub-folders); empty if none."""
    folder = folder.strip("/")
    spec = f"{commit}:{folder}" if folder else f"{commit}:"
    try:
        out = _git(repo, ["ls-tree", "-z", spec], what=f"{folder or 'the top folder'} at "
                                                      f"{commit[:12]}")
    except GitError as exc:
        if "not a tree object" in str(exc) or "Not a valid object name" in str(exc):
            return []
        raise
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        head, _, name = record.partition(b"\t")
        mode, kind, blob = head.decode("ascii").split(" ")
        if kind == "blob":
            entries.append(TreeEntry(os.fsdecode(name), mode, blob))
    return entries


def read_blob(repo: str, blob: str) -> bytes:
    """The content of blob ``blob``."""
    return _git(repo, ["cat-file", "blob", blob], what=f"blob {blob[:12]}")


def show(repo: str, rev: str, path: str) -> bytes:
    """The content of ``path`` at ``rev`` (``git show REV:path``)."""
    return _git(repo, ["cat-file", "blob", f"{rev}:{path.lstrip('/')}"],
                what=f"{path} at {rev}")
