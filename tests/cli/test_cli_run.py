"""Black-box tests of ``run``: exec, ``--credentials-dir`` and ``--format``.

Real processes throughout: the console script, a child that traps signals,
``/proc`` read while the child runs, and ``sh`` evaluating ``--format shell``.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets import Secrets
from tests.cli._support import CANARY, MACULA_BIN, Result, run_cli, run_proc

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)

# A child that reports who it is, then waits; a forwarded signal makes it
# write which one came and exit with the status given as its second argument.
TRAP = """\
import json, os, signal, sys, time
out, code = sys.argv[1], int(sys.argv[2])
def on_signal(signum, frame):
    with open(os.path.join(out, "got"), "a") as f:
        f.write(f"{signum}\\n")
    sys.exit(code)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
            signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(sig, on_signal)
creds = os.environ.get("CREDENTIALS_DIRECTORY")
files = {}
if creds:
    for name in sorted(os.listdir(creds)):
        path = os.path.join(creds, name)
        with open(path) as f:
            files[name] = [os.stat(path).st_mode, f.read()]
info = {"pid": os.getpid(), "ppid": os.getppid(), "creds": creds, "files": files,
        "dir_mode": os.stat(creds).st_mode if creds else None,
        "token": os.environ.get("API_TOKEN")}
with open(os.path.join(out, "ready.tmp"), "w") as f:
    json.dump(info, f)
os.replace(os.path.join(out, "ready.tmp"), os.path.join(out, "ready"))
for _ in range(3000):  # a minute at most, should a test fail before signalling it
    time.sleep(0.02)
sys.exit(99)
"""

_apps = itertools.count()


@pytest.fixture
def env(store_env: dict[str, str]) -> dict[str, str]:
    """The environment for the console script: a store with app ``console``."""
    put(store_env, "console", {"api-token": CANARY, "database.url": "postgres://db/x"})
    return {**os.environ, **store_env}


@pytest.fixture
def trap(tmp_path: Path) -> Path:
    script = tmp_path / "trap.py"
    script.write_text(TRAP)
    (tmp_path / "out").mkdir()
    return script


def put(store_env: dict[str, str], app: str, values: dict[str, str]) -> None:
    with Secrets.open(env=store_env) as secrets:
        for key, value in values.items():
            secrets.put(app, key, value)


def start(env: dict[str, str], *args: str | int | os.PathLike[str]
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([MACULA_BIN, "run", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ready(out: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """What the trap child reported once it is waiting for signals."""
    deadline = time.monotonic() + 60
    while not (out / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the child never got ready"
        time.sleep(0.02)
    info: dict[str, Any] = json.loads((out / "ready").read_text())
    return info


def finish(proc: subprocess.Popen[bytes]) -> Result:
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out, err.decode())


def proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


# -- exec (the default) ------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exec_passes_the_exit_status(env: dict[str, str], code: int) -> None:
    r = run_proc("run", "--app", "console", "--", "sh", "-c", f"exit {code}", env=env)
    assert (r.rc, r.out, r.err) == (code, b"", "")


def test_exec_death_by_signal_is_the_commands_own(env: dict[str, str]) -> None:
    # The command is this very process: whoever waits sees it die of the
    # signal, and a shell reports that as 128 + N.
    r = run_proc("run", "--app", "console", "--", "sh", "-c", "kill -USR1 $$", env=env)
    assert r.rc == -signal.SIGUSR1
    script = f'{MACULA_BIN} run --app console -- sh -c "kill -USR1 \\$\\$"; echo "rc=$?"'
    r = Result(*_sh(script, env))
    assert r.out == f"rc={128 + signal.SIGUSR1}\n".encode()


def _sh(script: str, env: dict[str, str]) -> tuple[int, bytes, str]:
    proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=60,
                          check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode()


def test_exec_sigterm_goes_to_the_command_which_is_this_process(
        env: dict[str, str], trap: Path) -> None:
    out = trap.parent / "out"
    proc = start(env, "--app", "console", "--", sys.executable, trap, out, 42)
    info = ready(out, proc)
    assert info["pid"] == proc.pid  # exec: no parent in between
    assert info["token"] == CANARY
    assert CANARY.encode() not in proc_file(proc.pid, "cmdline")
    proc.send_signal(signal.SIGTERM)
    r = finish(proc)
    assert (r.rc, r.err) == (42, "")
    assert (out / "got").read_text() == f"{signal.SIGTERM}\n"


# -- credentials directory ------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 42])
def test_credentials_mode_passes_the_exit_status(
        env: dict[str, str], tmp_path: Path, code: int) -> None:
    creds = tmp_path / "creds"
    r = run_proc("run", "--app", "console", "--credentials-dir", creds, "--",
                 "sh", "-c", f'test -f "$CREDENTIALS_DIRECTORY/api-token" && exit {code}',
                 env=env)
    assert (r.rc, r.out, r.err) == (code, b"", "")
    assert not creds.exists()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGKILL, signal.SIGTERM])
def test_credentials_mode_reports_death_by_signal_as_128_plus_n(
        env: dict[str, str], tmp_path: Path, sig: signal.Signals) -> None:
    creds = tmp_path / "creds"
    r = run_proc("run", "--app", "console", "--credentials-dir", creds, "--",
                 "sh", "-c", f"kill -{sig.name.removeprefix('SIG')} $$", env=env)
    assert (r.rc, r.err) == (128 + sig, "")
    assert not creds.exists()


@pytest.mark.parametrize("sig", FORWARDED, ids=lambda s: s.name)
def test_credentials_mode_forwards_signals_and_cleans_up(
        env: dict[str, str], trap: Path, sig: signal.Signals) -> None:
    out = trap.parent / "out"
    creds = trap.parent / "creds"
    proc = start(env, "--app", "console", "--credentials-dir", creds, "--",
                 sys.executable, trap, out, 42)
    info = ready(out, proc)
    assert info["ppid"] == proc.pid and info["pid"] != proc.pid
    assert creds.is_dir()
    proc.send_signal(sig)
    r = finish(proc)
    assert (r.rc, r.out, r.err) == (42, b"", "")
    assert (out / "got").read_text() == f"{sig}\n"
    assert not creds.exists()


def test_sigterm_to_the_parent_of_a_child_that_does_not_trap_it(
        env: dict[str, str], tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    ready_file = tmp_path / "ready"
    proc = start(env, "--app", "console", "--credentials-dir", creds, "--", "sh", "-c",
                 f'touch {ready_file}; while :; do sleep 0.05; done')
    deadline = time.monotonic() + 60
    while not ready_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    r = finish(proc)
    assert (r.rc, r.err) == (128 + signal.SIGTERM, "")
    assert not creds.exists()


def test_credentials_files_dir_and_environment(env: dict[str, str], trap: Path) -> None:
    out = trap.parent / "out"
    creds = trap.parent / "creds"
    proc = start(env, "--app", "console", "--credentials-dir", creds, "--",
                 sys.executable, trap, out, 0)
    info = ready(out, proc)
    try:
        assert info["creds"] == str(creds)
        assert info["dir_mode"] == stat.S_IFDIR | 0o700
        assert info["files"] == {
            "api-token": [stat.S_IFREG | 0o400, CANARY],
            "database.url": [stat.S_IFREG | 0o400, "postgres://db/x"],
        }
        # Files only, as under systemd: the values are in no process's
        # arguments or environment.
        assert info["token"] is None
        child = info["pid"]
        for pid in (proc.pid, child):
            assert CANARY.encode() not in proc_file(pid, "cmdline")
            assert CANARY.encode() not in proc_file(pid, "environ")
        assert b"CREDENTIALS_DIRECTORY=" + str(creds).encode() in proc_file(child, "environ")
    finally:
        proc.send_signal(signal.SIGTERM)
    assert finish(proc).rc == 0
    assert not creds.exists()


def test_also_env_passes_the_variables_too(env: dict[str, str], trap: Path) -> None:
    out = trap.parent / "out"
    creds = trap.parent / "creds"
    proc = start(env, "--app", "console", "--credentials-dir", creds, "--also-env", "--",
                 sys.executable, trap, out, 5)
    info = ready(out, proc)
    assert info["token"] == CANARY
    assert set(info["files"]) == {"api-token", "database.url"}
    assert CANARY.encode() not in proc_file(info["pid"], "cmdline")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc).rc == 5


def test_pristine_with_files_passes_only_the_directory(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    r = run_proc("run", "--app", "console", "--credentials-dir", creds, "--pristine", "--",
                 "env", env={**env, "PATH": "/nowhere"})
    assert (r.rc, r.out, r.err) == (0, f"CREDENTIALS_DIRECTORY={creds}\n".encode(), "")


def test_the_child_gets_default_signal_handling(env: dict[str, str], tmp_path: Path) -> None:
    """Nothing blocked, SIGPIPE not ignored: as if a shell had started it."""
    for extra in ([], ["--credentials-dir", str(tmp_path / "creds")]):
        r = run_proc("run", "--app", "console", *extra, "--", "cat", "/proc/self/status",
                     env=env).assert_ok()
        fields = dict(line.split(":\t", 1) for line in r.text.splitlines() if ":\t" in line)
        assert int(fields["SigBlk"], 16) == 0, extra
        for sig in (signal.SIGPIPE, signal.SIGTERM, signal.SIGINT):
            assert not int(fields["SigIgn"], 16) >> (sig - 1) & 1, (extra, sig.name)


# Takes signals with sigtimedwait, so each copy is seen with who sent it (a
# Python handler would run once for two copies that come close together).
COUNT = """\
import os, signal, sys
out = sys.argv[1]
wanted = {signal.SIGINT, signal.SIGTERM}
signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
open(os.path.join(out, "ready"), "w").close()
while True:
    info = signal.sigtimedwait(wanted, 60)
    if info is None:
        sys.exit(99)
    with open(os.path.join(out, "got"), "a") as f:
        f.write(f"{info.si_signo} {info.si_pid}\\n")
    if info.si_signo == signal.SIGTERM:
        sys.exit(9)
"""


def test_ctrl_c_on_a_terminal_reaches_the_child_once(env: dict[str, str], tmp_path: Path) -> None:
    """The terminal sends ^C to the whole foreground group: no second copy from us."""
    import fcntl
    import termios

    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "count.py"
    script.write_text(COUNT)
    creds = tmp_path / "creds"
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [MACULA_BIN, "run", "--app", "console", "--credentials-dir", str(creds), "--",
             sys.executable, str(script), str(out)],
            env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # noqa: PLW1509
        os.close(slave)
        deadline = time.monotonic() + 60
        while not (out / "ready").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        # A forwarded copy can merge with the terminal's (one pending SIGINT
        # holds both), so one ^C might not show it: five do, nearly always.
        got = out / "got"
        for n in range(1, 6):
            os.write(master, b"\x03")
            while len(got.read_text().splitlines() if got.exists() else []) < n:
                assert time.monotonic() < deadline, "^C did not reach the child"
                time.sleep(0.01)
            time.sleep(0.2)  # a forwarded copy would be here by now
        kernel = f"{signal.SIGINT} 0\n" * 5  # pid 0: sent by the kernel, for the terminal
        assert got.read_text() == kernel
        os.kill(proc.pid, signal.SIGTERM)  # from kill(1): forwarded
        assert proc.wait(timeout=60) == 9
        assert got.read_text() == kernel + f"{signal.SIGTERM} {proc.pid}\n"
        assert not creds.exists()
    finally:
        os.close(master)


def test_a_signal_from_the_child_is_not_sent_back(env: dict[str, str], tmp_path: Path) -> None:
    code = ("import os, signal, sys, time\n"
            "got = []\n"
            "signal.signal(signal.SIGUSR1, lambda *a: got.append(1))\n"
            "os.kill(os.getppid(), signal.SIGUSR1)\n"
            "time.sleep(0.5)\n"
            "sys.exit(len(got))\n")
    r = run_proc("run", "--app", "console", "--credentials-dir", tmp_path / "creds", "--",
                 sys.executable, "-c", code, env=env)
    assert (r.rc, r.err) == (0, "")


def test_an_existing_non_empty_dir_is_refused_and_left_alone(
        env: dict[str, str], tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mine").write_text("keep")
    r = run_proc("run", "--app", "console", "--credentials-dir", creds, "--", "true", env=env)
    assert "is not empty" in r.assert_one_error()
    assert [p.name for p in creds.iterdir()] == ["mine"]


def test_links_and_files_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("")
    line = run_proc("run", "--app", "console", "--credentials-dir", tmp_path / "link", "--",
                    "true", env=env).assert_one_error()
    assert "symbolic link" in line
    assert list(target.iterdir()) == []
    line = run_proc("run", "--app", "console", "--credentials-dir", tmp_path / "file", "--",
                    "true", env=env).assert_one_error()
    assert "not a directory" in line
    line = run_proc("run", "--app", "console", "--credentials-dir", tmp_path / "no" / "dir",
                    "--", "true", env=env).assert_one_error()
    assert "cannot open" in line


def test_an_existing_empty_dir_is_used_and_removed(env: dict[str, str], tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o755)
    r = run_proc("run", "--app", "console", "--credentials-dir", creds, "--", "sh", "-c",
                 'stat -c %a "$CREDENTIALS_DIRECTORY"; touch "$CREDENTIALS_DIRECTORY/extra"',
                 env=env)
    assert (r.rc, r.out, r.err) == (0, b"700\n", "")
    assert not creds.exists()  # what the child left there too


def test_command_not_found_cleans_up(env: dict[str, str], tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    line = run_proc("run", "--app", "console", "--credentials-dir", creds, "--",
                    "no-such-command-xyz", env=env).assert_one_error()
    assert "command not found" in line
    assert not creds.exists()


def test_credential_names_are_keys_and_must_not_collide(
        store_env: dict[str, str], tmp_path: Path) -> None:
    put(store_env, "a", {"token": CANARY})
    put(store_env, "b", {"token": "other", "url": "u"})
    env = {**os.environ, **store_env}
    creds = tmp_path / "creds"
    line = run_proc("run", "--app", "a", "--app", "b", "--credentials-dir", creds, "--",
                    "true", env=env).assert_one_error()
    assert "a/token and b/token" in line
    assert not creds.exists()
    r = run_proc("run", "--app", "a", "--app", "b", "--only", "url", "--credentials-dir",
                 creds, "--", "sh", "-c", 'ls "$CREDENTIALS_DIRECTORY"', env=env)
    assert (r.rc, r.out) == (0, b"url\n")


# -- export formats ---------------------------------------------------------------------------

AWKWARD = {
    "quote": "it's",
    "quotes": "'\"'''\"",
    "newlines": "a\nb\n\n",
    "dollar": "$HOME ${HOME} $(id) `id`",
    "backslashes": "\\ \\\\ \\n \\'",
    "unicode": "påss wörd ✓ 鍵 \u2028 \U0001f511",
    "spaces": "  lead and trail  ",
    "empty": "",
    "cr": "a\r\nb\r",
    "controls": "\x01\x1b[31m\x7f\t",
    "hash": "# not a comment",
}

# Any text a variable can hold: no NUL, no lone surrogate (not UTF-8).
texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def export(store_env: dict[str, str], app: str, fmt: str, *extra: str) -> Result:
    return run_cli("run", "--app", app, "--format", fmt, *extra, env=store_env)


def _env_of(values: dict[str, str]) -> dict[str, str]:
    return {key.upper(): value for key, value in values.items()}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.dictionaries(keys, texts, min_size=1, max_size=4))
def test_dotenv_reads_back_with_python_dotenv(
        store_env: dict[str, str], values: dict[str, str]) -> None:
    from dotenv import dotenv_values

    app = f"app{next(_apps)}"
    put(store_env, app, values)
    r = export(store_env, app, "dotenv", "--quiet").assert_ok()
    assert r.err == ""
    assert dotenv_values(stream=io.StringIO(r.text), interpolate=False) == _env_of(values)


def _eval_in(shell: str, script: Path, names: list[str]) -> list[str]:
    printed = subprocess.run(
        [shell, "-c", f'eval "$(cat {script})"; printf "%s\\0" ' + " ".join(
            f'"${name}"' for name in names)],
        capture_output=True, check=True, timeout=60, env={"PATH": os.environ["PATH"]}).stdout
    return printed.decode().split("\0")[:-1]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_shell_format_round_trips_awkward_values(
        store_env: dict[str, str], tmp_path: Path, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    put(store_env, "awk", AWKWARD)
    r = export(store_env, "awk", "shell", "--quiet").assert_ok()
    script = tmp_path / "exports.sh"
    script.write_bytes(r.out)
    names = [key.upper() for key in AWKWARD]
    assert _eval_in(shell, script, names) == list(AWKWARD.values())
    assert "export QUOTE='it'\\''s'\n" in r.text


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
          max_examples=40)
@given(st.dictionaries(keys, texts, min_size=1, max_size=4))
def test_shell_format_round_trips_any_text(
        store_env: dict[str, str], tmp_path: Path, values: dict[str, str]) -> None:
    app = f"app{next(_apps)}"
    put(store_env, app, values)
    script = tmp_path / f"{app}.sh"
    script.write_bytes(export(store_env, app, "shell", "--quiet").assert_ok().out)
    env = _env_of(values)
    assert _eval_in("sh", script, list(env)) == list(env.values())


def test_json_format_is_an_object_of_variables(env: dict[str, str],
                                               store_env: dict[str, str]) -> None:
    put(store_env, "awk", AWKWARD)
    r = export(store_env, "awk", "json", "--prefix", "APP_").assert_ok()
    assert json.loads(r.text) == {f"APP_{k.upper()}": v for k, v in AWKWARD.items()}
    assert r.err == ("macula: warning: the output holds secret values in plaintext "
                     "(--quiet to not say this)\n")


def test_formats_warn_unless_quiet_and_follow_only(env: dict[str, str],
                                                   store_env: dict[str, str]) -> None:
    for fmt in ("dotenv", "json", "shell"):
        r = export(store_env, "console", fmt, "--only", "database.url").assert_ok()
        assert r.err.startswith("macula: warning: ") and r.err.count("\n") == 1
        assert CANARY not in r.err and CANARY not in r.text and "DATABASE_URL" in r.text
        assert export(store_env, "console", fmt, "-q").assert_ok().err == ""


def test_format_refuses_a_command_and_other_mismatches(
        env: dict[str, str], tmp_path: Path) -> None:
    for args in (["--format", "dotenv", "--", "env"],
                 ["--format", "shell", "env"],
                 ["--format", "json", "--credentials-dir", str(tmp_path / "c")],
                 ["--format", "json", "--pristine"],
                 ["--quiet", "--", "true"],
                 ["--also-env", "--", "true"]):
        r = run_proc("run", "--app", "console", *args, env=env)
        r.assert_one_error(2)
    assert not (tmp_path / "c").exists()
    run_proc("run", "--app", "console", "--format", "yaml", env=env).assert_one_error(2)


def test_format_refuses_a_nul_byte(store_env: dict[str, str]) -> None:
    put(store_env, "nul", {"k": "a\x00" + CANARY})
    line = export(store_env, "nul", "shell").assert_one_error()
    assert "nul/k" in line

