"""The git integration, end to end: real git, the real sops binary, our CLI.

* ``merge-driver`` set up as docs/git.md says (``.gitattributes`` +
  ``merge.sops.driver``): two branches that change different keys of one
  sops file merge cleanly, and the result decrypts here and with ``sops -d``
  to both changes; the same key changed on both branches is a real git
  conflict, reported by path and never by value (sops issue 52).
* ``decrypt`` as a ``textconv`` filter: ``git diff`` and ``git log -p`` show
  the decrypted lines, so the changed key's name is visible.
* ``diff A B`` on files and on ``REV:path``: exit 0 equal, 1 different,
  2 trouble, values only with ``--show-values``.

The driver runs as ``<this python> -m macula_secrets``, so no console
script is needed; git finds the test identity through SOPS_AGE_KEY_FILE.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from macula_secrets import sops
from tests.cli._support import run_cli
from tests.conftest import TEST_AGE_PUBLIC, run_sops

pytestmark = pytest.mark.interop

CANARY = "s3cr3t-CANARY-7f3a9c"
MACULA = f"{shlex.quote(sys.executable)} -m macula_secrets"
PLAIN = (b"# database\ndb:\n    user: admin\n    password: pw-0\nhosts:\n    - a.example\n"
         b"    - b.example\ntoken: tok-0\n")

Git = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def keyed_env(age_key_file: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test identity for in-process calls, git's children and sops."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


@pytest.fixture
def repo(tmp_path: Path, keyed_env: dict[str, str]) -> Path:
    """A repository set up as docs/git.md describes (repo-local config only)."""
    path = tmp_path / "repo"
    path.mkdir()
    git = _git(path, keyed_env)
    git("init", "-q", "-b", "main")
    git("config", "user.name", "Test")
    git("config", "user.email", "test@example.org")
    git("config", "merge.sops.name", "sops files, key by key")
    git("config", "merge.sops.driver", f"{MACULA} merge-driver %O %A %B %P")
    git("config", "diff.sopsdiffer.textconv", f"{MACULA} decrypt")
    (path / ".gitattributes").write_text(
        "*.enc.yaml diff=sopsdiffer merge=sops\n*.enc.json diff=sopsdiffer merge=sops\n")
    return path


def _git(repo: Path, env: dict[str, str]) -> Git:
    def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc
    return git


def _cli(*args: str | Path, cwd: Path) -> None:
    run_cli(*args, cwd=cwd).assert_ok()


def _branches(repo: Path, env: dict[str, str], name: str,
              on_main: Callable[[Path], None], on_feature: Callable[[Path], None],
              *, writer: str = "ours", sops_bin: str | None = None) -> Git:
    """Commit ``name`` on main, change it on ``feature`` and on main, stay on main."""
    git = _git(repo, env)
    target = repo / name
    if writer == "sops":
        assert sops_bin is not None
        plain = repo / ("plain" + name.removeprefix("secrets.enc"))
        plain.write_bytes(PLAIN if name.endswith(".yaml") else
                          b'{"db": {"user": "admin", "password": "pw-0"}, "token": "tok-0"}')
        proc = run_sops(sops_bin, "--encrypt", "--age", TEST_AGE_PUBLIC, str(plain), env=env)
        assert proc.returncode == 0, proc.stderr
        plain.unlink()
        target.write_bytes(proc.stdout)
    else:
        target.write_bytes(sops.encrypt(PLAIN, recipients=[TEST_AGE_PUBLIC]))
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "feature")
    on_feature(target)
    git("commit", "-q", "-am", "feature")
    git("checkout", "-q", "main")
    on_main(target)
    git("commit", "-q", "-am", "main")
    return git


def _set(path: str, value: str) -> Callable[[Path], None]:
    return lambda target: _cli("set", target, path, f'"{value}"', cwd=target.parent)


def _sops_decrypt(sops_bin: str, target: Path, env: dict[str, str]) -> bytes:
    proc = run_sops(sops_bin, "--decrypt", str(target), env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- merge driver ----------------------------------------------------------------------------


def test_different_keys_merge(repo: Path, keyed_env: dict[str, str], sops_bin: str) -> None:
    git = _branches(repo, keyed_env, "secrets.enc.yaml",
                    on_main=_set('["db"]["password"]', "pw-main"),
                    on_feature=_set('["token"]', "tok-feature"))
    target = repo / "secrets.enc.yaml"
    main_version = target.read_bytes()
    merge = git("merge", "--no-edit", "feature", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "CONFLICT" not in merge.stdout
    assert git("status", "--porcelain").stdout == ""
    merged = target.read_bytes()
    assert b"<<<<<<<" not in merged
    assert sops.load(target) == {"db": {"user": "admin", "password": "pw-main"},
                                 "hosts": ["a.example", "b.example"], "token": "tok-feature"}
    plain = _sops_decrypt(sops_bin, target, keyed_env)
    assert plain == PLAIN.replace(b"pw-0", b"pw-main").replace(b"tok-0", b"tok-feature")
    # Our side's values keep their exact ciphertext (a minimal diff against main).
    ours_lines = set(main_version.decode().splitlines())
    for line in merged.decode().splitlines():
        if line.startswith(("    user:", "    password:", "    - ", "#ENC")):
            assert line in ours_lines, line
        if line.startswith("token:"):
            assert line not in ours_lines
    # The merge commit's diff against main, through textconv: only the token line.
    shown = git("diff", "HEAD~1", "HEAD", "--", "secrets.enc.yaml").stdout
    changed = [ln for ln in shown.splitlines() if ln[:1] in "+-" and ln[:3] not in "+++---"]
    assert changed == ["-token: tok-0", "+token: tok-feature"]


def test_same_key_is_a_conflict(repo: Path, keyed_env: dict[str, str]) -> None:
    git = _branches(repo, keyed_env, "secrets.enc.yaml",
                    on_main=_set('["db"]["password"]', CANARY + "-main"),
                    on_feature=_set('["db"]["password"]', CANARY + "-feature"))
    target = repo / "secrets.enc.yaml"
    main_version = target.read_bytes()
    merge = git("merge", "--no-edit", "feature", check=False)
    assert merge.returncode != 0
    assert "CONFLICT" in merge.stdout
    assert "UU secrets.enc.yaml" in git("status", "--porcelain").stdout
    # The driver left OURS as it was; git puts it in the work tree, still valid.
    assert target.read_bytes() == main_version
    assert sops.load(target)["db"]["password"] == CANARY + "-main"  # type: ignore[index]
    assert '["db"]["password"]: changed differently on both sides' in merge.stderr
    assert CANARY not in merge.stderr and CANARY not in merge.stdout


def test_file_from_real_sops_merges(repo: Path, keyed_env: dict[str, str],
                                    sops_bin: str) -> None:
    """Base written by sops, one branch edited by sops, the other by us."""
    def sops_set(target: Path) -> None:
        proc = run_sops(sops_bin, "set", str(target), '["token"]', '"tok-sops"', env=keyed_env)
        assert proc.returncode == 0, proc.stderr

    git = _branches(repo, keyed_env, "secrets.enc.yaml", writer="sops", sops_bin=sops_bin,
                    on_main=_set('["db"]["user"]', "root"), on_feature=sops_set)
    merge = git("merge", "--no-edit", "feature", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    target = repo / "secrets.enc.yaml"
    expected = PLAIN.replace(b"user: admin", b"user: root").replace(b"tok-0", b"tok-sops")
    assert _sops_decrypt(sops_bin, target, keyed_env) == expected
    assert run_cli("decrypt", target).assert_ok().out == expected


def test_json_file_merges_by_path_format(repo: Path, keyed_env: dict[str, str],
                                         sops_bin: str) -> None:
    """git's temp files have no extension: the format comes from %P."""
    git = _branches(repo, keyed_env, "secrets.enc.json", writer="sops", sops_bin=sops_bin,
                    on_main=_set('["db"]["password"]', "pw-main"),
                    on_feature=_set('["token"]', "tok-feature"))
    merge = git("merge", "--no-edit", "feature", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    plain = json.loads(_sops_decrypt(sops_bin, repo / "secrets.enc.json", keyed_env))
    assert plain == {"db": {"user": "admin", "password": "pw-main"}, "token": "tok-feature"}


def test_file_added_on_both_branches_merges(repo: Path, keyed_env: dict[str, str]) -> None:
    """add/add: git runs the driver with an empty base; disjoint keys merge."""
    git = _git(repo, keyed_env)
    (repo / "README").write_text("x\n")
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    target = repo / "new.enc.yaml"
    git("checkout", "-q", "-b", "feature")
    target.write_bytes(sops.encrypt({"a": "from-feature"}, recipients=[TEST_AGE_PUBLIC]))
    git("add", "-A")
    git("commit", "-q", "-m", "feature")
    git("checkout", "-q", "main")
    target.write_bytes(sops.encrypt({"b": "from-main"}, recipients=[TEST_AGE_PUBLIC]))
    git("add", "-A")
    git("commit", "-q", "-m", "main")
    merge = git("merge", "--no-edit", "feature", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert sops.load(target) == {"b": "from-main", "a": "from-feature"}


def test_merge_driver_without_a_key_fails_cleanly(repo: Path, keyed_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """No identity: exit 2, OURS untouched, one error line; git would mark a conflict."""
    git = _branches(repo, keyed_env, "secrets.enc.yaml",
                    on_main=_set('["db"]["password"]', "pw-main"),
                    on_feature=_set('["token"]', "tok-feature"))
    for rev, name in (("HEAD~1", "base"), ("HEAD", "ours"), ("feature", "theirs")):
        (tmp_path / name).write_text(git("show", f"{rev}:secrets.enc.yaml").stdout)
    before = (tmp_path / "ours").read_bytes()
    result = run_cli("merge-driver", tmp_path / "base", tmp_path / "ours", tmp_path / "theirs",
                     "secrets.enc.yaml", env={"SOPS_AGE_KEY_FILE": ""})
    assert result.assert_one_error(2).startswith("macula: error: no identity matches")
    assert (tmp_path / "ours").read_bytes() == before


# -- textconv and diff --------------------------------------------------------------------------


def test_textconv_shows_the_changed_key(repo: Path, keyed_env: dict[str, str]) -> None:
    git = _git(repo, keyed_env)
    target = repo / "secrets.enc.yaml"
    target.write_bytes(sops.encrypt(PLAIN, recipients=[TEST_AGE_PUBLIC]))
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    _set('["db"]["password"]', "pw-1")(target)
    worktree = git("diff").stdout
    assert "-    password: pw-0" in worktree and "+    password: pw-1" in worktree
    assert "mac" not in worktree and "ENC[" not in worktree
    git("commit", "-q", "-am", "rotate password")
    log = git("log", "-p", "-1").stdout
    assert "+    password: pw-1" in log
    # Without the attribute, the same change is ciphertext and a MAC line.
    raw = git("-c", "diff.sopsdiffer.textconv=cat", "log", "-p", "-1").stdout
    assert "ENC[AES256_GCM" in raw and "mac:" in raw


def test_diff_command_on_files(tmp_path: Path, keyed_env: dict[str, str]) -> None:
    a = tmp_path / "a.enc.yaml"
    b = tmp_path / "b.enc.yaml"
    a.write_bytes(sops.encrypt(PLAIN, recipients=[TEST_AGE_PUBLIC]))
    b.write_bytes(a.read_bytes())
    same = run_cli("diff", a, b)
    assert (same.rc, same.out, same.err) == (0, b"", "")
    _cli("set", b, '["db"]["password"]', f'"{CANARY}"', cwd=tmp_path)
    _cli("unset", b, '["token"]', cwd=tmp_path)
    _cli("set", b, '["hosts"][2]', '"c.example"', cwd=tmp_path)
    _cli("set", b, '["api"]', '{"key": "k"}', cwd=tmp_path)
    hidden = run_cli("diff", a, b)
    assert hidden.rc == 1 and hidden.err == ""
    assert hidden.text.splitlines() == [
        '~ ["db"]["password"]', '+ ["hosts"][2]', '- ["token"]', '+ ["api"]']
    assert CANARY not in hidden.text and "pw-0" not in hidden.text
    shown = run_cli("diff", "--show-values", a, b)
    assert shown.rc == 1
    assert f'~ ["db"]["password"]: "pw-0" -> "{CANARY}"' in shown.text.splitlines()
    assert '+ ["api"]: {"key": "k"}' in shown.text.splitlines()
    # A file that cannot be decrypted: exit 2 (not 1, which means "different").
    nokey = run_cli("diff", a, b, env={"SOPS_AGE_KEY_FILE": ""})
    assert nokey.assert_one_error(2).startswith("macula: error: no identity matches")
    missing = run_cli("diff", a, tmp_path / "nope.enc.yaml")
    missing.assert_one_error(2)


def test_diff_command_on_revisions(repo: Path, keyed_env: dict[str, str]) -> None:
    git = _git(repo, keyed_env)
    target = repo / "secrets.enc.yaml"
    target.write_bytes(sops.encrypt(PLAIN, recipients=[TEST_AGE_PUBLIC]))
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    _set('["token"]', "tok-1")(target)
    git("commit", "-q", "-am", "token")
    result = run_cli("diff", "HEAD~1:secrets.enc.yaml", "HEAD:secrets.enc.yaml", cwd=repo)
    assert (result.rc, result.text, result.err) == (1, '~ ["token"]\n', "")
    # A revision against the work tree file; equal contents exit 0.
    assert run_cli("diff", "HEAD:secrets.enc.yaml", "secrets.enc.yaml", cwd=repo).rc == 0
    # From a subfolder, ./path is relative to it, as in `git show`.
    sub = repo / "sub"
    sub.mkdir()
    (sub / "x.enc.yaml").write_bytes(target.read_bytes())
    git("add", "-A")
    git("commit", "-q", "-m", "copy")
    assert run_cli("diff", "HEAD:./x.enc.yaml", "HEAD~1:secrets.enc.yaml", cwd=sub).rc == 0
    bad = run_cli("diff", "no-such-rev:secrets.enc.yaml", "secrets.enc.yaml", cwd=repo)
    assert "no-such-rev" in bad.assert_one_error(2)
