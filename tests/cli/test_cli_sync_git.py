"""Black-box tests of ``sync --git REPO [--rev REV] [--path DIR] [--force]`` and the commit
column of ``history``, against real git repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from macula_secrets import sops as sopslib
from macula_secrets.keys.age import generate_identity
from tests.cli._support import CANARY, Result, run_cli
from tests.conftest import TEST_AGE_PUBLIC

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


@pytest.fixture
def store_env(store_env: dict[str, str]) -> dict[str, str]:
    """The CLI tests' home with no secrets folder: sync reads git only."""
    return {**store_env, "MACULA_SECRETS_DIR": ""}


def cli(env: dict[str, str], *args: str | os.PathLike[str]) -> Result:
    return run_cli(*args, env=env)


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.org",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        capture_output=True, text=True, env=env, check=True, timeout=60).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "gitops"
    path.mkdir()
    git(path, "init", "-q")
    return path


def commit(repo: Path, apps: dict[str, dict[str, object]], *,
           recipient: str = TEST_AGE_PUBLIC) -> str:
    for app, data in apps.items():
        path = repo / "secrets" / f"{app}.enc.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(sopslib.encrypt(data, recipients=[recipient]))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


def history(env: dict[str, str], app: str, key: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(
        cli(env, "history", app, key, "--json").assert_ok().text)
    return out


def test_sync_two_commits_and_history_shows_them(store_env: dict[str, str],
                                                 repo: Path) -> None:
    c1 = commit(repo, {"web": {"token": "t1", "name": "n"}})
    r = cli(store_env, "sync", "--git", repo).assert_ok()
    assert r.text == "web: 2 added, 0 changed, 0 deleted, 0 unchanged\n"
    assert r.err == f"macula: synced commit {c1[:12]}\n"
    c2 = commit(repo, {"web": {"token": "t2", "name": "n"}})
    r = cli(store_env, "sync", "--git", repo, "--rev", "main").assert_ok()
    assert r.text == "web: 0 added, 1 changed, 0 deleted, 1 unchanged\n"
    assert r.err == f"macula: synced commit {c2[:12]} (the one before: {c1[:12]})\n"
    assert cli(store_env, "get", "web", "token").assert_ok().text == "t2\n"

    assert [(h["version"], h["commit"]) for h in history(store_env, "web", "token")] == [
        (1, c1), (2, c2)]
    table = cli(store_env, "history", "web", "token").assert_ok().text.splitlines()
    assert table[0].split() == ["VERSION", "CREATED", "(UTC)", "STATE", "DELETED", "(UTC)",
                                "COMMIT"]
    assert table[1].split()[-1] == c1[:12]
    assert table[2].split()[-2:] == [c2[:12], "current"]
    assert c2 not in table[2]  # the short form in the table; --json has the full id


def test_history_without_git_versions_has_no_commit_column(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "web", "token", "v1").assert_ok()
    table = cli(store_env, "history", "web", "token").assert_ok().text.splitlines()
    assert "COMMIT" not in table[0] and table[1].endswith("current")
    assert history(store_env, "web", "token")[0]["commit"] is None


def test_same_rev_twice_is_a_no_op(store_env: dict[str, str], repo: Path) -> None:
    c1 = commit(repo, {"web": {"token": "t1"}})
    cli(store_env, "sync", "--git", repo).assert_ok()
    r = cli(store_env, "sync", "--git", repo, "--rev", c1[:8]).assert_ok()
    assert r.text == "web: up to date (1 keys)\n"
    assert r.err == f"macula: nothing changed: the store is at commit {c1[:12]}\n"
    assert [h["version"] for h in history(store_env, "web", "token")] == [1]


def test_an_older_rev_is_refused_then_forced(store_env: dict[str, str], repo: Path) -> None:
    c1 = commit(repo, {"web": {"token": "t1"}})
    c2 = commit(repo, {"web": {"token": "t2"}})
    cli(store_env, "sync", "--git", repo).assert_ok()
    line = cli(store_env, "sync", "--git", repo, "--rev", "HEAD~1").assert_one_error()
    assert line == (f"macula: error: refusing to sync HEAD~1 ({c1[:12]}): it is older than "
                    f"{c2[:12]}, the commit synced last")
    r = cli(store_env, "sync", "--git", repo, "--rev", "HEAD~1")
    assert r.err.splitlines()[1] == ("macula: hint: to roll back on purpose, sync it with "
                                     "--force")
    assert cli(store_env, "get", "web", "token").assert_ok().text == "t2\n"
    assert len(history(store_env, "web", "token")) == 1

    r = cli(store_env, "sync", "--git", repo, "--rev", "HEAD~1", "--force").assert_ok()
    assert r.text == "web: 0 added, 1 changed, 0 deleted, 0 unchanged\n"
    assert cli(store_env, "get", "web", "token").assert_ok().text == "t1\n"
    assert [h["commit"] for h in history(store_env, "web", "token")] == [c2, c1]


def test_unknown_rev_and_bad_repository(store_env: dict[str, str], repo: Path,
                                        tmp_path: Path) -> None:
    commit(repo, {"web": {"token": "t1"}})
    line = cli(store_env, "sync", "--git", repo, "--rev", "v9.9").assert_one_error()
    assert "revision 'v9.9'" in line and str(repo) in line
    line = cli(store_env, "sync", "--git", tmp_path / "nowhere").assert_one_error()
    assert "nowhere" in line
    line = cli(store_env, "sync", "--git", repo, "--path", "nope").assert_one_error()
    assert "has no files in nope" in line
    assert cli(store_env, "list").assert_ok().text == ""


def test_a_file_that_fails_is_named_and_nothing_changes(store_env: dict[str, str],
                                                        repo: Path) -> None:
    commit(repo, {"web": {"token": "t1"}})
    cli(store_env, "sync", "--git", repo).assert_ok()
    stranger = generate_identity().recipient
    assert stranger is not None
    commit(repo, {"web": {"token": "t2"}})
    c3 = commit(repo, {"api": {"key": CANARY}}, recipient=stranger)
    r = cli(store_env, "sync", "--git", repo)
    assert r.rc == 1 and r.out == b""
    lines = r.err.splitlines()
    assert lines[0].startswith(f"macula: error: {c3[:12]}:secrets/api.enc.yaml: no identity")
    assert lines[-1] == f"macula: nothing was synced: 1 app file(s) at commit {c3[:12]} failed"
    assert CANARY not in r.err and "Traceback" not in r.err
    assert cli(store_env, "get", "web", "token").assert_ok().text == "t1\n"
    assert cli(store_env, "list").assert_ok().text == "web\n"


def test_bare_repository_and_missing_working_tree(store_env: dict[str, str], repo: Path,
                                                  tmp_path: Path) -> None:
    c1 = commit(repo, {"web": {"token": "t1"}})
    shutil.rmtree(repo / "secrets")  # the checkout is gone; the commit is not
    cli(store_env, "sync", "--git", repo).assert_ok()
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True,
                   capture_output=True, timeout=60)
    r = cli(store_env, "sync", "--git", bare, "--path", "./secrets/", "--json").assert_ok()
    assert json.loads(r.text) == [{
        "app": "web", "source": f"{c1[:12]}:secrets/web.enc.yaml", "added": [],
        "changed": [], "deleted": [], "unchanged": 1, "error": None, "commit": c1}]
    assert r.err == ""


def test_git_options_need_git(store_env: dict[str, str]) -> None:
    for extra in (["--rev", "HEAD"], ["--path", "secrets"], ["--force"]):
        r = cli(store_env, "sync", *extra)
        assert r.rc == 2 and r.out == b""
        assert r.err.splitlines()[0] == ("macula: error: --rev, --path and --force go with "
                                         "--git REPO")
