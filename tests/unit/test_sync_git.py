"""``sync_git``: app files read at a commit of a real git repository into a real store.

Files are made with the project's own ``sops.encrypt`` and ``envfile.encrypt_file``;
the repositories are real (``git`` on the PATH), plain and bare.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets import sops as sopslib
from macula_secrets._git import GitError
from macula_secrets.backends import envfile
from macula_secrets.backends._folder import default_identities
from macula_secrets.errors import ConflictError, FormatError
from macula_secrets.keys._discovery import IdentitySources
from macula_secrets.keys.age import generate_identity
from macula_secrets.localstore.sqlite import SCHEMA_VERSION
from macula_secrets.sync import sync_git
from tests.conftest import TEST_AGE_PUBLIC

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

SECRET = "value-that-must-not-appear-Zq9"


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.org",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        capture_output=True, text=True, env=env, check=True, timeout=60)
    return done.stdout.strip()


def sops_file(data: dict[str, object], *, recipient: str = TEST_AGE_PUBLIC,
              fmt: str = "yaml") -> bytes:
    return sopslib.encrypt(data, recipients=[recipient], format=fmt)


def commit(repo: Path, files: dict[str, bytes | None], message: str = "change") -> str:
    """Write (or, for ``None``, remove) files in the working tree and commit them all."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        git(repo, "add", name)
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "gitops"
    path.mkdir()
    git(path, "init", "-q")
    return path


@pytest.fixture
def ids(age_key_file: Path) -> IdentitySources:
    return default_identities({"SOPS_AGE_KEY_FILE": str(age_key_file)})


@pytest.fixture
def secrets(tmp_path: Path) -> Iterator[Secrets]:
    s = Secrets.open(home=tmp_path / "home", source="none", env={})
    yield s
    s.close()


def commits_of(secrets: Secrets, app: str, key: str) -> list[tuple[int, str | None]]:
    return [(v.version, v.commit) for v in secrets.history(app, key)]


def snapshot(secrets: Secrets) -> dict[tuple[str, str], list[tuple[int, str, str | None]]]:
    """Every key's history (version, state, commit): what "the store did not change" means."""
    store = secrets.store
    return {(app, key): [(v.version, v.state, v.commit) for v in store.history("default", app,
                                                                                key)]
            for app in store.list_apps("default")
            for key in store.list_keys("default", app, include_deleted=True)}


# -- commits ----------------------------------------------------------------------------


def test_each_new_version_records_its_commit(repo: Path, secrets: Secrets,
                                             ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1", "db": {"pw": "p1"}})})
    steps: list[tuple[int, int]] = []
    report = sync_git(secrets.store, repo, "HEAD", tenant="default", identities=ids,
                      progress=lambda done, total: steps.append((done, total)))
    assert steps == [(0, 1), (1, 1)]
    assert report.commit == c1 and not report.errors
    (web,) = report.apps
    assert (web.app, web.source, web.added) == ("web", f"{c1[:12]}:secrets/web.enc.yaml",
                                                ("token", "db.pw"))
    worker_env = envfile.encrypt_file(b"QUEUE=q2\n", [TEST_AGE_PUBLIC])
    c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t2", "db": {"pw": "p1"}}),
                       "secrets/worker.env.age": worker_env})
    report = sync_git(secrets.store, repo, "main", tenant="default", identities=ids)
    assert report.commit == c2
    assert [(a.app, a.added, a.changed, a.unchanged) for a in report.apps] == [
        ("web", (), ("token",), 1), ("worker", ("QUEUE",), (), 0)]
    assert secrets.get("web", "token") == "t2"
    assert secrets.get("worker", "QUEUE") == "q2"
    # The unchanged value keeps the version (and commit) it was made at.
    assert commits_of(secrets, "web", "token") == [(1, c1), (2, c2)]
    assert commits_of(secrets, "web", "db.pw") == [(1, c1)]
    assert commits_of(secrets, "worker", "QUEUE") == [(1, c2)]
    assert [v.to_json()["commit"] for v in secrets.history("web", "token")] == [c1, c2]
    synced = secrets.store.synced_commit("default")
    assert synced is not None and synced.commit == c2
    assert synced.repo == str(repo) and synced.path == "secrets"


def test_versions_not_from_git_have_no_commit(repo: Path, secrets: Secrets,
                                              ids: IdentitySources) -> None:
    secrets.put("web", "manual", "m1")
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    assert commits_of(secrets, "web", "manual") == [(1, None)]
    secrets.rollback("web", "token", 1)
    assert [c for _v, c in commits_of(secrets, "web", "token")][1] is None
    # A hand-made value is not the commit's: the next sync leaves it alone.
    assert secrets.get("web", "manual") == "m1"


def test_same_commit_twice_changes_nothing(repo: Path, secrets: Secrets,
                                           ids: IdentitySources) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    before, change = snapshot(secrets), secrets.store.last_change()
    report = sync_git(secrets.store, repo, tenant="default", identities=ids)
    assert not report.changed_anything and not report.errors
    assert [(a.app, a.unchanged) for a in report.apps] == [("web", 1)]
    assert snapshot(secrets) == before and secrets.store.last_change() == change


# -- no checkout ------------------------------------------------------------------------


def test_working_tree_is_neither_read_nor_touched(repo: Path, secrets: Secrets,
                                                  ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"}),
                       "secrets/api.enc.json": sops_file({"key": "k1"}, fmt="json")})
    # Dirty: one file changed, one removed, one added and never committed.
    (repo / "secrets" / "web.enc.yaml").write_bytes(sops_file({"token": "dirty"}))
    (repo / "secrets" / "api.enc.json").unlink()
    (repo / "secrets" / "new.enc.yaml").write_bytes(sops_file({"x": "y"}))
    status = git(repo, "status", "--porcelain")
    tree = {p: p.read_bytes() for p in (repo / "secrets").iterdir()}
    report = sync_git(secrets.store, repo, tenant="default", identities=ids)
    assert report.commit == c1
    assert [a.app for a in report.apps] == ["api", "web"]
    assert secrets.get("web", "token") == "t1" and secrets.get("api", "key") == "k1"
    assert secrets.get("new", "x") is None
    assert git(repo, "status", "--porcelain") == status
    assert {p: p.read_bytes() for p in (repo / "secrets").iterdir()} == tree


def test_a_bare_clone_works_and_counts_as_the_same_history(
        repo: Path, tmp_path: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t2"})})
    bare = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True,
                   timeout=60, capture_output=True)
    report = sync_git(secrets.store, bare, "main", tenant="default", identities=ids)
    assert report.commit == c2
    assert commits_of(secrets, "web", "token") == [(1, c1), (2, c2)]
    with pytest.raises(ConflictError):
        sync_git(secrets.store, bare, c1, tenant="default", identities=ids)


# -- rollback protection ----------------------------------------------------------------


def test_an_older_commit_is_refused_until_forced(repo: Path, secrets: Secrets,
                                                 ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t2"})})
    sync_git(secrets.store, repo, c2, tenant="default", identities=ids)
    before = snapshot(secrets)
    with pytest.raises(ConflictError) as caught:
        sync_git(secrets.store, repo, "HEAD~1", tenant="default", identities=ids)
    message = str(caught.value)
    assert c1[:12] in message and c2[:12] in message and "older than" in message
    assert "HEAD~1" in message and "--force" in (caught.value.hint or "")
    assert snapshot(secrets) == before
    synced = secrets.store.synced_commit("default")
    assert synced is not None and synced.commit == c2

    report = sync_git(secrets.store, repo, "HEAD~1", tenant="default", force=True,
                      identities=ids)
    assert report.commit == c1 and report.changed_anything
    assert secrets.get("web", "token") == "t1"
    assert commits_of(secrets, "web", "token") == [(1, c2), (2, c1)]
    synced = secrets.store.synced_commit("default")
    assert synced is not None and synced.commit == c1
    # Forward again from the forced commit: no --force needed.
    sync_git(secrets.store, repo, c2, tenant="default", identities=ids)
    assert secrets.get("web", "token") == "t2"


def test_a_commit_on_another_branch_is_refused(repo: Path, secrets: Secrets,
                                               ids: IdentitySources) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    git(repo, "branch", "side")
    c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t2"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    git(repo, "checkout", "-q", "side")
    c3 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t3"})})
    with pytest.raises(ConflictError, match="not a descendant of") as caught:
        sync_git(secrets.store, repo, "side", tenant="default", identities=ids)
    assert c3[:12] in str(caught.value) and c2[:12] in str(caught.value)
    assert secrets.get("web", "token") == "t2"


def test_a_synced_commit_the_repository_lacks_is_refused(
        repo: Path, tmp_path: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    c9 = commit(other, {"secrets/web.enc.yaml": sops_file({"token": "t9"})})
    with pytest.raises(ConflictError, match="is not in") as caught:
        sync_git(secrets.store, other, tenant="default", identities=ids)
    assert c1[:12] in str(caught.value) and c9[:12] in str(caught.value)
    assert secrets.get("web", "token") == "t1"
    sync_git(secrets.store, other, tenant="default", force=True, identities=ids)
    assert secrets.get("web", "token") == "t9"
    assert commits_of(secrets, "web", "token") == [(1, c1), (2, c9)]


def test_a_concurrent_sync_that_recorded_another_commit_wins(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    before = snapshot(secrets)
    # What a second sync sees if the first recorded c1 after it checked ancestry.
    with pytest.raises(ConflictError, match="while this one ran"):
        secrets.store.apply_commit("default", {"web": ("sops", {"token": "t0"})},
                                   origins=("sops",), commit="0" * 40, repo=str(repo),
                                   path="secrets", previous=None)
    assert snapshot(secrets) == before
    synced = secrets.store.synced_commit("default")
    assert synced is not None and synced.commit == c1


# -- errors -----------------------------------------------------------------------------


def test_unknown_revision_and_not_a_repository(repo: Path, tmp_path: Path, secrets: Secrets,
                                               ids: IdentitySources) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    with pytest.raises(GitError, match="no-such-branch"):
        sync_git(secrets.store, repo, "no-such-branch", tenant="default", identities=ids)
    with pytest.raises(GitError, match="bad revision"):
        sync_git(secrets.store, repo, "--all", tenant="default", identities=ids)
    with pytest.raises(GitError, match="not a git repository"):
        sync_git(secrets.store, tmp_path, tenant="default", identities=ids)
    assert secrets.store.list_apps("default") == []
    assert secrets.store.synced_commit("default") is None


def test_a_file_that_fails_is_named_and_nothing_is_stored(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    before = snapshot(secrets)
    stranger = generate_identity().recipient
    assert stranger is not None
    tampered = sops_file({"token": SECRET}).replace(b"ENC[AES256_GCM,data:", b"ENC[AES256_GCM,"
                                                     b"data:AA", 1)
    c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t2"}),
                       "secrets/api.enc.yaml": sops_file({"key": SECRET}, recipient=stranger),
                       "secrets/db.enc.yaml": tampered,
                       "secrets/bad.enc.yaml": b"not: [sops"})
    report = sync_git(secrets.store, repo, tenant="default", identities=ids)
    assert report.commit == c2
    assert [(a.app, a.source) for a in report.apps] == [
        (app, f"{c2[:12]}:secrets/{app}.enc.yaml") for app in ("api", "bad", "db")]
    assert all(a.error and SECRET not in a.error for a in report.errors)
    assert "no identity" in (report.apps[0].error or "")
    # All or nothing: the good file of that commit is not stored either.
    assert snapshot(secrets) == before and secrets.get("web", "token") == "t1"
    synced = secrets.store.synced_commit("default")
    assert synced is not None and synced.commit == c1


def test_a_bad_key_name_or_value_is_named_too(repo: Path, tmp_path: Path,
                                              ids: IdentitySources) -> None:
    with Secrets.open(home=tmp_path / "h", source="none",
                      env={"MACULA_SECRETS_MAX_VALUE_SIZE": "10"}) as secrets:
        c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "x" * 11}),
                           "secrets/ok.enc.yaml": sops_file({"a": "b"})})
        report = sync_git(secrets.store, repo, tenant="default", identities=ids)
        (failed,) = report.apps
        assert failed.source == f"{c1[:12]}:secrets/web.enc.yaml"
        assert "over the limit" in (failed.error or "")
        assert secrets.store.list_apps("default") == []


def test_both_a_sops_and_an_env_file_for_one_app_is_an_error(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"}),
                       "secrets/web.env.age": envfile.encrypt_file(b"A=1\n", [TEST_AGE_PUBLIC])})
    report = sync_git(secrets.store, repo, tenant="default", identities=ids)
    (failed,) = report.errors
    assert failed.source == f"{c1[:12]}:secrets/web.env.age"
    assert "also has a sops file" in (failed.error or "")
    assert secrets.store.list_apps("default") == []


def test_a_symlink_is_named_not_followed(repo: Path, secrets: Secrets,
                                         ids: IdentitySources) -> None:
    (repo / "elsewhere").mkdir()
    (repo / "elsewhere" / "web.enc.yaml").write_bytes(sops_file({"token": "t1"}))
    (repo / "secrets").mkdir()
    os.symlink("../elsewhere/web.enc.yaml", repo / "secrets" / "web.enc.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "link")
    (failed,) = sync_git(secrets.store, repo, tenant="default", identities=ids).errors
    assert "symbolic link" in (failed.error or "")


def test_a_missing_folder_is_an_error_not_an_empty_sync(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    with pytest.raises(GitError, match="has no files in secrest"):
        sync_git(secrets.store, repo, path="secrest", tenant="default", identities=ids)
    with pytest.raises(Exception, match="inside the repository"):
        sync_git(secrets.store, repo, path="../secrets", tenant="default", identities=ids)
    assert secrets.get("web", "token") == "t1"


def test_a_file_that_left_the_commit_takes_its_keys_along(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"}),
                  "secrets/api.enc.yaml": sops_file({"key": "k1"})})
    sync_git(secrets.store, repo, tenant="default", identities=ids)
    secrets.put("api", "manual", "m1")
    commit(repo, {"secrets/api.enc.yaml": None})
    report = sync_git(secrets.store, repo, tenant="default", identities=ids)
    assert [(a.app, a.source, a.deleted) for a in report.apps if a.deleted] == [
        ("api", "(file removed)", ("key",))]
    assert secrets.get("api", "key") is None and secrets.get("web", "token") == "t1"
    assert secrets.get("api", "manual") == "m1"


def test_folder_and_git_sync_treat_the_same_keys_as_file_born(
        repo: Path, tmp_path: Path, ids: IdentitySources, age_key_file: Path) -> None:
    folder = repo / "secrets"
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1", "old": "o"})})
    env = {"SOPS_AGE_KEY_FILE": str(age_key_file)}
    with Secrets.open(home=tmp_path / "h", secrets_dir=folder, env=env) as secrets:
        secrets.sync()
        c2 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
        report = sync_git(secrets.store, repo, tenant="default", identities=ids)
        assert [(a.app, a.deleted, a.unchanged) for a in report.apps] == [("web", ("old",), 1)]
        assert commits_of(secrets, "web", "token") == [(1, None)]
        assert secrets.store.synced_commit("default").commit == c2  # type: ignore[union-attr]


def test_tenants_read_their_subfolder_and_have_their_own_record(
        repo: Path, secrets: Secrets, ids: IdentitySources) -> None:
    c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "default"}),
                       "secrets/acme/web.enc.yaml": sops_file({"token": "acme"})})
    report = sync_git(secrets.store, repo, tenant="acme", identities=ids)
    assert [a.source for a in report.apps] == [f"{c1[:12]}:secrets/acme/web.enc.yaml"]
    assert secrets.with_tenant("acme").get("web", "token") == "acme"
    assert secrets.get("web", "token") is None
    assert secrets.store.synced_commit("default") is None
    acme = secrets.store.synced_commit("acme")
    assert acme is not None and (acme.commit, acme.path) == (c1, "secrets/acme")


def test_identities_default_to_the_environment(repo: Path, secrets: Secrets,
                                               age_key_file: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "t1"})})
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key_file))
    assert not sync_git(secrets.store, repo, tenant="default").errors
    assert secrets.get("web", "token") == "t1"


# -- schema -----------------------------------------------------------------------------


def _downgrade_to_schema_1(db: Path) -> None:
    """Turn a store into what the code before schema 2 wrote: no commit column or table."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ALTER TABLE versions DROP COLUMN commit_id")
        conn.execute("DROP TABLE synced_commits")
        conn.execute("UPDATE meta SET value = 1 WHERE name = 'schema'")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _columns(db: Path, table: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_a_schema_1_store_is_upgraded_in_place_and_keeps_its_data(
        tmp_path: Path, repo: Path, ids: IdentitySources) -> None:
    home = tmp_path / "old"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("web", "token", "v1")
        secrets.put("web", "token", "v2")
        secrets.delete("web", "token", versions=[1])
        secrets.put("api", "key", "k1")
        db = Path(secrets.store.path)
    _downgrade_to_schema_1(db)
    assert "commit_id" not in _columns(db, "versions")

    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert [(v.version, v.state, v.commit) for v in secrets.history("web", "token")] == [
            (1, "deleted", None), (2, "live", None)]
        assert secrets.get("web", "token") == "v2" and secrets.get("api", "key") == "k1"
        assert secrets.store.synced_commit("default") is None
        c1 = commit(repo, {"secrets/web.enc.yaml": sops_file({"token": "v3"})})
        sync_git(secrets.store, repo, tenant="default", identities=ids)
        assert commits_of(secrets, "web", "token") == [(1, None), (2, None), (3, c1)]
    assert "commit_id" in _columns(db, "versions")
    assert _columns(db, "synced_commits")[:2] == ["tenant", "commit_id"]
    conn = sqlite3.connect(db)
    try:
        schema = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()[0]
    finally:
        conn.close()
    assert int(schema) == SCHEMA_VERSION == 2


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "new"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("web", "token", "v1")
        db = Path(secrets.store.path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE meta SET value = 99 WHERE name = 'schema'")
    conn.close()
    with pytest.raises(FormatError, match="schema version 99"):
        Secrets.open(home=home, source="none", env={})


# -- docs -------------------------------------------------------------------------------


def test_the_python_example_in_the_docs_runs(tmp_path: Path, age_key_file: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "sync-from-git.md"
    (block,) = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    work = tmp_path / "work"
    (work / "gitops").mkdir(parents=True)
    git(work / "gitops", "init", "-q")
    c1 = commit(work / "gitops", {"secrets/console.enc.yaml": sops_file(
        {"database_url": "postgres://db/x"})})
    monkeypatch.chdir(work)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key_file))
    monkeypatch.setenv("MACULA_SECRETS_HOME", str(tmp_path / "home"))
    exec(compile(block, str(doc), "exec"), {})  # noqa: S102 - our own documentation
    assert capsys.readouterr().out == f"at {c1}\n['{c1}']\n"
