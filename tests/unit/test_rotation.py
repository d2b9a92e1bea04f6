"""Rotation without restart: subscriptions across processes, live refs, the folder watcher.

Every test runs the other side as a real separate process (the CLI, or a
`python -c` child) where the issue says "another process".
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import SecretRef, Secrets, sops
from tests.cli._support import CANARY
from tests.conftest import TEST_AGE_PUBLIC

WAIT = 20.0   # generous: a loaded CI machine; the tests never assert speed


@pytest.fixture
def env(node_env: dict[str, str]) -> dict[str, str]:
    return node_env


@pytest.fixture
def secrets(env: dict[str, str]) -> Iterator[Secrets]:
    with Secrets.open(env=env) as s:
        yield s


def _cli(env: dict[str, str], *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "macula_secrets", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


class Calls:
    """Callback that records (app, key, version, value read inside the callback)."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.q: queue.Queue[tuple[str, str, int, str | None]] = queue.Queue()

    def __call__(self, app: str, key: str, version: int) -> None:
        self.q.put((app, key, version, self.secrets.get(app, key)))

    def next(self) -> tuple[str, str, int, str | None]:
        try:
            return self.q.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no callback within {WAIT} s") from None

    def none_within(self, seconds: float) -> bool:
        try:
            self.q.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def _write_app(folder: Path, app: str, data: dict[str, object]) -> Path:
    """Write an app file the way `git pull` does: in place, not by rename."""
    path = folder / f"{app}.enc.yaml"
    blob = sops.encrypt(data, recipients=[TEST_AGE_PUBLIC])
    with open(path, "wb") as f:
        f.write(blob)
    return path


# -- subscriptions across processes -----------------------------------------------------

def test_a_put_in_another_process_reaches_the_callback_and_get(
        env: dict[str, str], secrets: Secrets) -> None:
    secrets.put("console", "db_password", "old")
    assert secrets.get("console", "db_password") == "old"   # cached before the change
    calls = Calls(secrets)
    sub = secrets.subscribe("console", calls)
    _cli(env, "put", "console", "other_key", "x")   # another key of the app: also a change
    assert calls.next()[:2] == ("console", "other_key")
    done = _cli(env, "put", "console", "db_password", stdin="new")
    assert done.returncode == 0, done.stderr
    assert calls.next() == ("console", "db_password", 2, "new")
    assert secrets.get("console", "db_password") == "new"
    _cli(env, "put", "billing", "db_password", "elsewhere")   # another app: not ours
    _cli(env, "delete", "console", "db_password")
    assert calls.next() == ("console", "db_password", 2, None)
    sub.cancel()
    _cli(env, "put", "console", "db_password", "after cancel")
    assert calls.none_within(0.5)


def test_key_filter_and_one_feed_thread_for_many_subscriptions(
        env: dict[str, str], secrets: Secrets) -> None:
    def feeds() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "macula-changes"}

    before = feeds()   # other tests' stores may still be closing theirs
    wanted, everything = Calls(secrets), Calls(secrets)
    subs = [secrets.subscribe("console", wanted, key="api_token"),
            secrets.subscribe("console", everything)]
    subs += [secrets.subscribe(f"app{i}", lambda *_: None) for i in range(20)]
    ours = feeds() - before
    assert len(ours) == 1
    _cli(env, "put", "console", "other", "1")
    _cli(env, "put", "console", "api_token", "2")
    assert everything.next()[1] == "other"
    assert everything.next()[1] == "api_token"
    assert wanted.next()[:3] == ("console", "api_token", 1)
    assert wanted.q.empty()
    for sub in subs:
        sub.cancel()
    deadline = time.monotonic() + WAIT
    while ours & feeds():
        assert time.monotonic() < deadline, "the feed thread outlived its subscriptions"
        time.sleep(0.01)


def test_a_tenant_view_hears_only_its_tenant(env: dict[str, str], secrets: Secrets) -> None:
    other = secrets.with_tenant("acme")
    calls = Calls(other)
    other.subscribe("console", calls)
    _cli(env, "put", "console", "k", "default tenant")
    _cli(env, "put", "--tenant", "acme", "console", "k", "acme tenant")
    assert calls.next() == ("console", "k", 1, "acme tenant")
    assert calls.none_within(0.3)


def test_the_feed_sleeps_on_inotify_and_still_hears_a_commit_without_a_bump(
        env: dict[str, str], secrets: Secrets) -> None:
    """A writer killed between its commit and its token bump leaves no event: the feed's
    once-a-second look at the change log still finds the change."""
    calls = Calls(secrets)
    secrets.subscribe("console", calls)
    feed = secrets._change_feed()
    assert feed._watch is not None, "inotify is available on Linux: the feed should use it"
    silent_put = (
        "import sys\n"
        "from macula_secrets import Secrets\n"
        "from macula_secrets.localstore import _notify\n"
        "_notify.ChangeToken.bump = lambda self: None   # as if killed right after commit\n"
        "with Secrets.open() as s:\n"
        "    print(s.put('console', 'quiet', 'committed, never announced'))\n")
    done = subprocess.run([sys.executable, "-c", silent_put], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert calls.next() == ("console", "quiet", 1, "committed, never announced")


# -- live refs ---------------------------------------------------------------------------

def test_ref_reads_the_current_value_and_tells_of_changes(
        env: dict[str, str], secrets: Secrets) -> None:
    secrets.put("console", "database_url", f"postgres://app:{CANARY}@db/app")
    ref = secrets.ref("console", "database_url")
    assert isinstance(ref, SecretRef)
    assert ref.get() == f"postgres://app:{CANARY}@db/app"
    assert CANARY not in repr(ref) and CANARY not in str(ref)
    seen: queue.Queue[tuple[SecretRef, int, str | None]] = queue.Queue()
    ref.on_change(lambda r, version: seen.put((r, version, r.get())))
    _cli(env, "put", "console", "database_url", stdin="postgres://app:rotated@db/app")
    changed, version, value = seen.get(timeout=WAIT)
    assert changed is ref and version == 2 and value == "postgres://app:rotated@db/app"
    assert ref.require() == "postgres://app:rotated@db/app"
    ref.close()
    missing = secrets.ref("console", "nope", default="fallback")
    assert missing.get() == "fallback"
    with pytest.raises(LookupError):
        missing.require()


# -- the folder watcher ------------------------------------------------------------------

@pytest.fixture
def watch_process(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`macula-secrets watch --json` in another process, with its output in files."""
    out = open(tmp_path / "watch.out", "w+")   # noqa: SIM115 - closed below
    err = open(tmp_path / "watch.err", "w+")   # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "macula_secrets", "watch", "--json"],
                            env=env, stdout=out, stderr=err, text=True)
    deadline = time.monotonic() + WAIT
    while "watching" not in (tmp_path / "watch.err").read_text():
        assert proc.poll() is None, (tmp_path / "watch.err").read_text()
        assert time.monotonic() < deadline, "watch did not start"
        time.sleep(0.02)
    time.sleep(0.2)   # the watch is in place shortly after the notice
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=WAIT)
        out.close()
        err.close()
        assert rc == 0, (tmp_path / "watch.err").read_text()
        assert "Traceback" not in (tmp_path / "watch.err").read_text()


def test_a_file_edited_on_disk_reaches_a_subscriber_in_another_process(
        env: dict[str, str], secrets: Secrets, tmp_path: Path,
        watch_process: subprocess.Popen[str]) -> None:
    folder = tmp_path / "secrets"
    calls = Calls(secrets)
    secrets.subscribe("console", calls)
    _write_app(folder, "console", {"db_password": "one", "api_token": "t"})
    got = {calls.next()[1:] for _ in range(2)}
    assert got == {("db_password", 1, "one"), ("api_token", 1, "t")}

    # An edit of one value: one change, the new value readable in the callback.
    _write_app(folder, "console", {"db_password": "two", "api_token": "t"})
    assert calls.next() == ("console", "db_password", 2, "two")

    # A corrupted file: reported by name, the old values stay in service.
    path = folder / "console.enc.yaml"
    text = path.read_text()
    path.write_text(text.replace("db_password: ENC[AES256_GCM,data:",
                                 "db_password: ENC[AES256_GCM,data:AAAA", 1))
    deadline = time.monotonic() + WAIT
    while "console.enc.yaml" not in (tmp_path / "watch.err").read_text():
        assert time.monotonic() < deadline, "the broken file was not reported"
        time.sleep(0.02)
    err = (tmp_path / "watch.err").read_text()
    assert "keeping the last good values" in err and "two" not in err.split("watching")[1]
    assert calls.none_within(0.3)
    assert secrets.get("console", "db_password") == "two"

    # Repaired, minus a key: that key is soft-deleted and its subscribers told.
    _write_app(folder, "console", {"db_password": "two"})
    assert calls.next() == ("console", "api_token", 1, None)
    assert secrets.get("console", "api_token") is None
    assert [v.deleted is not None for v in secrets.history("console", "api_token")] == [True]

    # The file removed: its keys go too.
    path.unlink()
    assert calls.next() == ("console", "db_password", 2, None)


def test_watch_reports_each_sync_as_a_json_line(
        env: dict[str, str], tmp_path: Path, watch_process: subprocess.Popen[str]) -> None:
    import json

    _write_app(tmp_path / "secrets", "billing", {"stripe_key": CANARY})
    deadline = time.monotonic() + WAIT
    while not (tmp_path / "watch.out").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    line = json.loads((tmp_path / "watch.out").read_text().splitlines()[0])
    assert line["app"] == "billing" and line["added"] == ["stripe_key"] and line["error"] is None
    assert CANARY not in (tmp_path / "watch.out").read_text()


def test_the_in_process_watcher_and_a_file_written_before_it_started(
        env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    _write_app(folder, "console", {"k": "before start"})
    synced: queue.Queue[str] = queue.Queue()
    with Secrets.open(env=env) as s:
        s.watch(on_sync=lambda r: synced.put(r.app))
        assert synced.get(timeout=WAIT) == "console"   # the catch-up sync at start
        assert s.get("console", "k") == "before start"
        calls = Calls(s)
        s.subscribe("console", calls)
        _write_app(folder, "console", {"k": "after"})
        assert calls.next() == ("console", "k", 2, "after")
        (folder / "notes.txt").write_text("not an app file")
        (folder / "bad name!.enc.yaml").write_text("ignored")
        assert calls.none_within(0.3)
    assert not any(t.name == "macula-watch" for t in threading.enumerate())


def test_watch_without_a_folder_is_one_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    env = dict(env, MACULA_SECRETS_DIR=str(tmp_path / "missing"))
    done = _cli(env, "watch")
    assert done.returncode == 1
    assert done.stderr.startswith("macula: error: ") and "Traceback" not in done.stderr
    assert "missing" in done.stderr
