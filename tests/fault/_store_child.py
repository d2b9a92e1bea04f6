"""Child processes for the runtime-store fault tests, and the helpers the tests share with them.

Run as a script (``python _store_child.py COMMAND HOME ...``) the module is a
child: it opens the store in ``HOME`` and does one job (puts in a loop,
concurrent writes, master key rotations, deliberate crashes) while the test
kills it or waits for it. Imported, it gives the tests the same value
generators and a small :class:`Child` wrapper that starts, talks to, kills
and reaps those processes.

Protocol: a child prints ``ready`` once it has imported what it needs, then
waits for one line on stdin before it touches the store, so a test can start
children early (hiding the interpreter's start-up) and release them together.
Everything a child reports is one line on stdout, flushed when written.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from typing import Any

from macula_secrets.keys.master import MasterKeyFile, MasterKeyProvider, parse_key
from macula_secrets.localstore import barrier
from macula_secrets.localstore.store import LocalStore

SCRIPT = os.path.abspath(__file__)
TENANT = "default"
MAX_VERSIONS = 100_000
"""Large enough that no test prunes a version: every version ever written stays readable."""

CRASH_SLOTS = (("alpha", "k0"), ("alpha", "k1"), ("beta", "db_password"), ("gamma", "token"))
CONC_APP = "conc"
CAS_APP = "cas"
CAS_KEY = "counter"

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_éß€✓"


# -- shared by the tests and the children -----------------------------------------------------


def open_store(home: str, provider: MasterKeyProvider | None = None) -> LocalStore:
    """The store of ``home`` as the tests use it (no version is ever pruned)."""
    master = provider or MasterKeyFile(os.path.join(home, "master.key"))
    return LocalStore(os.path.join(home, "store.db"), master, max_versions=MAX_VERSIONS)


def crash_slot(run: str, i: int) -> tuple[str, str]:
    """The (app, key) the ``i``-th put of a crash run writes."""
    return CRASH_SLOTS[random.Random(f"{run}/{i}/slot").randrange(len(CRASH_SLOTS))]


def crash_value(run: str, i: int) -> str:
    """The value of the ``i``-th put of a crash run: an id, then padding of varying size."""
    rng = random.Random(f"{run}/{i}/value")
    kind = rng.random()
    if kind < 0.6:
        size = rng.randrange(0, 200)
    elif kind < 0.95:
        size = rng.randrange(200, 6000)
    else:
        size = rng.randrange(20_000, 80_000)  # several pages: checkpoints happen mid-run
    return f"value-{run}-{i}|" + "".join(rng.choices(_ALPHABET, k=size))


def key_id_of_file(path: str) -> str:
    """Hex id of the master key in a key file (what ``LocalStore.master_key_id`` returns)."""
    with open(path, encoding="ascii") as f:
        return barrier.key_id(parse_key(f.read(), source=path)).hex()


def child_env() -> dict[str, str]:
    """The environment for children: no macula-secrets settings leak in from outside."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MACULA_SECRETS_")}


class Child:
    """One child process of this script; always ``close()`` it (in ``finally``)."""

    def __init__(self, command: str, home: str, *args: str, cwd: str | None = None) -> None:
        self.argv = [sys.executable, "-W", "error", SCRIPT, command, home, *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd or home, env=child_env())
        self._buf = b""
        self._stderr = b""
        self._done = False

    def _fail(self, what: str) -> AssertionError:
        self.close()
        err = self._stderr.decode(errors="replace")[-3000:]
        return AssertionError(f"{what}: {self.argv[3:]} rc={self.proc.returncode}\n{err}")

    def readline(self, timeout: float = 60.0) -> str:
        """The next line the child printed (a hang guard, not a timing assertion)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail("child did not answer")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise self._fail("child exited")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def expect(self, text: str) -> None:
        line = self.readline()
        if line != text:
            raise self._fail(f"expected {text!r}, child said {line!r}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, **req: Any) -> Any:
        """One request to a ``live`` child; its answer, or ``{"error": ...}``."""
        self.send(json.dumps(req))
        return json.loads(self.readline())

    def kill(self) -> list[str]:
        """SIGKILL the child and reap it; the complete lines it printed that we did not read."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        return self.wait(expect_rc=-signal.SIGKILL)

    def wait(self, expect_rc: int | None = 0, timeout: float = 120.0) -> list[str]:
        """Wait for the child to end; the complete lines left unread (not a partial last one)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self._fail("child did not finish") from None
        finally:
            self._done = True
        self._stderr += err
        data = self._buf + out
        self._buf = b""
        if expect_rc is not None and self.proc.returncode != expect_rc:
            raise self._fail(f"child ended with {self.proc.returncode}, not {expect_rc}")
        lines = data.split(b"\n")
        return [line.decode() for line in lines[:-1]]

    def close(self) -> None:
        """Kill and reap the child if it is still there; safe to call twice."""
        if self._done:
            return
        self._done = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            _out, err = self.proc.communicate(timeout=30)
            self._stderr += err or b""
        if self.proc.poll() is None:  # pragma: no cover - communicate timed out
            self.proc.wait()


# -- the children ------------------------------------------------------------------------------


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _go() -> None:
    _say("ready")
    if not sys.stdin.readline():
        sys.exit(0)  # the test gave up on this child before releasing it


def cmd_put_loop(home: str, run: str) -> None:
    """Put forever; print ``ack APP KEY VERSION I`` after each put returned."""
    _go()
    _say("started")
    store = open_store(home)
    i = 0
    while True:
        app, key = crash_slot(run, i)
        version = store.put(TENANT, app, key, crash_value(run, i))
        _say(f"ack {app} {key} {version} {i}")
        i += 1


def cmd_writer(home: str, wid: str, keys: str, rounds: str) -> None:
    """Put ``rounds`` values into each key through ``Secrets``; print what each put returned."""
    from macula_secrets import Secrets

    with Secrets.open(home=home, source="none") as secrets:
        _go()
        rng = random.Random(wid)
        out = []
        for n in range(int(rounds)):
            for k in range(int(keys)):
                key = f"k{k}"
                value = f"w{wid}-{key}-{n}"
                out.append([key, secrets.put(CONC_APP, key, value), value])
                # SQLite's busy handler lets a waiting writer sleep while the
                # one holding the lock takes it again at once; a short pause
                # here lets the writers interleave instead of taking turns in blocks.
                time.sleep(rng.uniform(0, 0.002))
        _say(json.dumps(out))


def cmd_reader(home: str, keys: str, stop: str) -> None:
    """Read the keys through ``Secrets.get`` until ``stop`` exists; report what changed."""
    from macula_secrets import Secrets

    names = [f"k{k}" for k in range(int(keys))]
    seen: dict[str, list[str]] = {name: [] for name in names}
    errors: list[str] = []
    reads = 0
    with Secrets.open(home=home, source="none") as secrets:
        _go()
        rounds = 0
        while not (rounds % 32 == 0 and os.path.exists(stop)):
            rounds += 1
            for name in names:
                try:
                    value = secrets.get(CONC_APP, name)
                except Exception as exc:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                reads += 1
                history = seen[name]
                if value is None:
                    if history:
                        errors.append(f"{name}: absent after {history[-1]!r}")
                elif not history or history[-1] != value:
                    history.append(value)
            if rounds % 4 == 0:
                time.sleep(0.0005)  # leave the writers some CPU on a small machine
        final = {name: secrets.get(CONC_APP, name) for name in names}
    _say(json.dumps({"reads": reads, "errors": errors[:50], "seen": seen, "final": final}))


def cmd_cas(home: str, goal: str) -> None:
    """Increment the counter ``goal`` times with check-and-set, retrying on conflicts."""
    from macula_secrets.errors import ConflictError

    store = open_store(home)
    _go()
    rng = random.Random(os.getpid())
    done = conflicts = 0
    while done < int(goal):
        current = store.current_version(TENANT, CAS_APP, CAS_KEY)
        _info, value = store.read_version(TENANT, CAS_APP, CAS_KEY, current)
        assert value is not None
        time.sleep(rng.uniform(0, 0.001))  # widen the window another process can write in
        try:
            store.put(TENANT, CAS_APP, CAS_KEY, str(int(value) + 1), cas=current)
        except ConflictError:
            conflicts += 1
            continue
        done += 1
    store.close()
    _say(json.dumps({"done": done, "conflicts": conflicts}))


def cmd_rotate_loop(home: str) -> None:
    """Rotate the master key forever (every tenth time re-encrypting everything)."""
    _go()
    _say("started")
    store = open_store(home)
    i = 0
    while True:
        store.rotate_master_key(reencrypt=i % 10 == 9)
        _say(f"rotated {i}")
        i += 1


class _CrashBeforeRename(MasterKeyFile):
    """The store committed the new key; the process dies before renaming its file."""

    def commit_rotation(self) -> None:
        os._exit(9)


class _CrashAfterBegin(MasterKeyFile):
    """The pending key is on disk; the process dies before the store commits to it."""

    def begin_rotation(self, key: bytes) -> None:
        super().begin_rotation(key)
        os._exit(9)


def cmd_crash_rotation(home: str, where: str) -> None:
    """Rotate once and die at ``where``: before-rename, after-begin or mid-reencrypt."""
    path = os.path.join(home, "master.key")
    provider: MasterKeyProvider
    if where == "before-rename":
        provider = _CrashBeforeRename(path)
    elif where == "after-begin":
        provider = _CrashAfterBegin(path)
    else:
        provider = MasterKeyFile(path)
    store = open_store(home, provider)
    _go()

    def progress(done: int, _total: int) -> None:
        if done > 0:
            os._exit(9)  # one app re-encrypted and committed, the others not

    store.rotate_master_key(reencrypt=where == "mid-reencrypt", progress=progress)
    sys.exit(3)  # not reached: each variant dies inside the rotation


def cmd_live(home: str) -> None:
    """Serve JSON requests on stdin with one store kept open (process A of the pick-up test)."""
    store = open_store(home)
    _say("ready")
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        result: Any
        try:
            if op == "read":
                result = {}
                for app, key in req["keys"]:
                    value = store.lookup(TENANT, app, key)
                    result[f"{app}/{key}"] = value if isinstance(value, str) else repr(value)
            elif op == "read_version":
                result = store.read_version(TENANT, req["app"], req["key"], req["version"])[1]
            elif op == "put":
                result = store.put(TENANT, req["app"], req["key"], req["value"])
            elif op == "key_id":
                result = store.master_key_id()
            else:
                raise ValueError(op)
            reply = {"ok": result}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        _say(json.dumps(reply))
    store.close()


def cmd_dump(home: str) -> None:
    """Open the store afresh and print every kept version of every key, and the key id."""
    store = open_store(home)
    out: dict[str, dict[str, str | None]] = {}
    for tenant in store.list_tenants():
        for app in store.list_apps(tenant):
            for key in store.list_keys(tenant, app, include_deleted=True):
                versions = out.setdefault(f"{tenant}/{app}/{key}", {})
                for info in store.history(tenant, app, key):
                    versions[str(info.version)] = store.read_version(tenant, app, key,
                                                                     info.version)[1]
    _say(json.dumps({"key_id": store.master_key_id(), "values": out}))
    store.close()


COMMANDS = {
    "put-loop": cmd_put_loop,
    "writer": cmd_writer,
    "reader": cmd_reader,
    "cas": cmd_cas,
    "rotate-loop": cmd_rotate_loop,
    "crash-rotation": cmd_crash_rotation,
    "live": cmd_live,
    "dump": cmd_dump,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
