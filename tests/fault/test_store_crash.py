"""A writer killed at any moment loses nothing it acknowledged and leaves a sound store.

A child process puts values (sizes from a few bytes to 80 kB, so WAL
checkpoints happen mid-run) into a few keys in a loop and prints each put
after it returned. The test SIGKILLs it at a random moment: sometimes while
it opens the store, mostly somewhere in the loop. After every kill the store
is opened again and must hold every acknowledged put at its version with its
exact value; versions must be dense from 1; a put that committed but was not
acknowledged (killed between commit and print) must be a complete value
that this child wrote, and there can be at most one such put per kill.
``PRAGMA integrity_check`` must pass. Each test reuses one store for all of
its kills, so the store is reopened after a crash again and again, and the
last check opens it in a fresh process.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from tests.fault._store_child import (
    CRASH_SLOTS,
    TENANT,
    Child,
    crash_slot,
    crash_value,
    open_store,
)

RUNS = 5
KILLS_PER_RUN = 10  # RUNS * KILLS_PER_RUN = 50 kills in all


def _integrity_ok(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _kill_delay(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.15:
        return 0.0  # while it opens the store (or creates it, on the first kill)
    if kind < 0.35:
        return rng.uniform(0.0, 0.03)  # its first puts
    return rng.uniform(0.03, 0.35)


class _Ledger:
    """What the store must hold: every version ever seen, with its value."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[int, str]] = {slot: {} for slot in CRASH_SLOTS}
        self.acked = 0
        self.unacked = 0

    def record_acks(self, run: str, lines: list[str]) -> dict[tuple[str, str], int]:
        """Add the acknowledged puts; return the highest acknowledged version per key."""
        last: dict[tuple[str, str], int] = {}
        for expected_i, line in enumerate(lines):
            tag, app, key, version_text, i_text = line.split(" ")
            assert tag == "ack", line
            i, version = int(i_text), int(version_text)
            assert i == expected_i, f"acks out of order: {line!r}"
            assert (app, key) == crash_slot(run, i), line
            known = self.values[(app, key)]
            assert version not in known, f"{app}/{key} version {version} acknowledged twice"
            known[version] = crash_value(run, i)
            last[(app, key)] = version
            self.acked += 1
        return last

    def check(self, home: Path, run: str, last_acked: dict[tuple[str, str], int]) -> None:
        """Open the store in-process and compare it with the ledger."""
        store = open_store(str(home))
        try:
            appeared = 0
            for slot in CRASH_SLOTS:
                app, key = slot
                known = self.values[slot]
                current = store.current_version(TENANT, app, key)
                assert current >= last_acked.get(slot, 0)
                assert current >= max(known, default=0), f"{app}/{key} lost versions"
                if current == 0:
                    continue
                versions = [info.version for info in store.history(TENANT, app, key)]
                assert versions == list(range(1, current + 1)), f"{app}/{key}: {versions}"
                for version in versions:
                    info, value = store.read_version(TENANT, app, key, version)
                    assert info.state == "live"
                    assert value is not None
                    if version in known:
                        assert value == known[version], f"{app}/{key} v{version} changed"
                        continue
                    # Committed, never acknowledged: must be a whole value of this run
                    # meant for this key (the child was killed before it printed).
                    ident, sep, _pad = value.partition("|")
                    assert sep, f"{app}/{key} v{version} is not a value we wrote"
                    prefix, _, i_text = ident.rpartition("-")
                    assert prefix == f"value-{run}", f"{app}/{key} v{version}: {ident!r}"
                    assert crash_slot(run, int(i_text)) == slot
                    assert value == crash_value(run, int(i_text))
                    known[version] = value
                    appeared += 1
                latest = store.lookup(TENANT, app, key)
                assert latest == known[current]
            # One put in flight at a time: at most one can have committed unacknowledged.
            assert appeared <= 1, appeared
            self.unacked += appeared
        finally:
            store.close()


@pytest.mark.parametrize("seed", range(RUNS))
def test_writer_killed_at_random(tmp_path: Path, seed: int) -> None:
    rng = random.Random(7919 * (seed + 1))
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "store.db"
    ledger = _Ledger()
    next_child: Child | None = None
    child: Child | None = None
    try:
        next_child = Child("put-loop", str(home), f"{seed}.0")
        for trial in range(KILLS_PER_RUN):
            run = f"{seed}.{trial}"
            child, next_child = next_child, None
            child.expect("ready")
            child.send("go")
            child.expect("started")
            if trial + 1 < KILLS_PER_RUN:
                # Start the next child now: it imports while this one runs and we
                # check the store, and touches nothing until it is told to go.
                next_child = Child("put-loop", str(home), f"{seed}.{trial + 1}")
            time.sleep(_kill_delay(rng))
            lines = child.kill()
            child = None
            last = ledger.record_acks(run, lines)
            _integrity_ok(db)
            ledger.check(home, run, last)
            _integrity_ok(db)
        # A fresh process sees the same store.
        dump = Child("dump", str(home))
        try:
            (line,) = dump.wait()
        finally:
            dump.close()
        values = json.loads(line)["values"]
        for (app, key), known in ledger.values.items():
            if known:
                stored = values[f"{TENANT}/{app}/{key}"]
                assert {int(v): text for v, text in stored.items()} == known
    finally:
        for leftover in (child, next_child):
            if leftover is not None:
                leftover.close()
    assert ledger.acked > 0, "no put was ever acknowledged: the kills all came too early"
