"""Issue 6: 30 s of load from 32 clients while the master key is rotated by another process.

``macula-secrets serve`` runs as its own process (plain HTTP on 127.0.0.1).
32 client threads, each with one keep-alive ``http.client`` connection, mix
reads (3 in 4) and writes (1 in 4) over 16 keys of 2 apps. Half-way, two
other processes rotate the master key of the same home: ``key
rotate-master``, then ``key rotate-master --reencrypt`` (new data keys,
every value re-encrypted).

Each written value is ``<app>/<key>|w<client>|<counter>``; a writer adds it
to the key's set of sent values before it sends it. A **wrong value** is
any of:

1. a read whose value is not one some writer sent (or the seed) for that
   key: unparseable, another key's, or never written;
2. two different values seen under one version of a key (by any reads and
   write acknowledgements of any clients): a version has one value;
3. a read older than what the same client already saw: a version lower
   than the highest version of that key that the client has had
   acknowledged for its own write or returned by an earlier read
   (read-your-writes and monotonic reads);
4. at the end, with every client stopped, a key whose latest value is not
   the value of the highest version acknowledged for it.

An **error** is any request that fails (exception, time-out) or gets
anything but 200. Both must be zero; request counts and rates are printed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.audit import verify
from macula_secrets.server.auth import Rule
from macula_secrets.server.tokens import TokenStore

from ._support import serve_process

pytestmark = pytest.mark.slow

CLIENTS = 32
DURATION = 30.0
ROTATE_AT = 9.0
REENCRYPT_AT = 18.0
APPS = ("billing", "console")
KEYS = [(a, f"key{i}") for a in APPS for i in range(8)]
WRITE_SHARE = 0.25


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACULA_SECRETS_")}
    env["MACULA_SECRETS_HOME"] = str(home)
    return env


@contextlib.contextmanager
def serve(home: Path) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    with serve_process(home, "--tls-disable", "--grace", "5") as (proc, url, _seen):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield proc, host, int(port)


@dataclass
class Shared:
    sent: dict[tuple[str, str], set[str]]
    acked: dict[tuple[str, str], dict[int, str]] = field(
        default_factory=lambda: defaultdict(dict))
    """Per key: version -> value, from write acknowledgements (and the seed)."""
    reads: list[tuple[tuple[str, str], int, str, int]] = field(default_factory=list)
    """Every read: (key, version, value, client), checked against ``acked`` at the end."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def ack(self, where: tuple[str, str], version: int, value: str, cid: int) -> None:
        with self.lock:
            known = self.acked[where].setdefault(version, value)
        if known != value:
            self.wrong.append(f"{where} version {version} acknowledged twice: {known!r} "
                              f"and {value!r} (client {cid})")


@dataclass
class Client:
    cid: int
    reads: int = 0
    writes: int = 0
    latencies: list[float] = field(default_factory=list)


def run_client(client: Client, shared: Shared, host: str, port: int, token: str) -> None:
    rng = random.Random(client.cid)
    seen: dict[tuple[str, str], int] = {}
    counter = 0
    headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        while not shared.stop.is_set():
            app, key = where = rng.choice(KEYS)
            path = f"/v1/secret/data/macula/{app}/{key}"
            write = rng.random() < WRITE_SHARE
            started = time.perf_counter()
            try:
                if write:
                    counter += 1
                    value = f"{app}/{key}|w{client.cid}|{counter}"
                    shared.sent[where].add(value)   # before it is sent
                    conn.request("POST", path, json.dumps({"data": {"value": value}}),
                                 headers)
                else:
                    conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                shared.errors.append(f"client {client.cid} {'POST' if write else 'GET'} "
                                     f"{path}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                continue
            client.latencies.append(time.perf_counter() - started)
            if resp.status != 200:
                shared.errors.append(f"client {client.cid} {'POST' if write else 'GET'} "
                                     f"{path}: {resp.status} {raw[:200]!r}")
                continue
            doc = json.loads(raw)
            if write:
                client.writes += 1
                version = int(doc["data"]["version"])
                shared.ack(where, version, value, client.cid)
            else:
                client.reads += 1
                got = doc["data"]["data"]["value"]
                version = int(doc["data"]["metadata"]["version"])
                if got not in shared.sent[where]:
                    shared.wrong.append(f"{where}: read {got!r}, which no writer sent")
                if version < seen.get(where, 0):
                    shared.wrong.append(
                        f"client {client.cid} read {where} version {version} ({got!r}) after "
                        f"it had seen version {seen[where]}")
                shared.reads.append((where, version, got, client.cid))
            seen[where] = max(seen.get(where, 0), version)
    finally:
        conn.close()


def rotate(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "macula_secrets", "key", "rotate-master",
                           *extra], env=_env(home), capture_output=True, text=True,
                          timeout=120, check=False)


def test_load_with_master_key_rotation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shared = Shared(sent=defaultdict(set))
    with Secrets.open(home=home, source="none", env={}) as secrets:
        for app, key in KEYS:
            seed = f"{app}/{key}|seed|0"
            shared.sent[(app, key)].add(seed)
            assert secrets.put(app, key, seed) == 1
            shared.acked[(app, key)][1] = seed
        first_key_id = secrets.store.master_key_id()
    with TokenStore.from_home(str(home)) as tokens:
        token, _ = tokens.create([Rule(frozenset({"read", "create", "update"}), app=a)
                                  for a in APPS], display_name="load")

    with serve(home) as (proc, host, port):
        clients = [Client(i) for i in range(CLIENTS)]
        threads = [threading.Thread(target=run_client, args=(c, shared, host, port, token),
                                    name=f"load-{c.cid}") for c in clients]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(ROTATE_AT)
        r1_at = time.monotonic() - started
        r1 = rotate(home)
        r1_took = time.monotonic() - started - r1_at
        time.sleep(max(0.0, REENCRYPT_AT - (time.monotonic() - started)))
        r2_at = time.monotonic() - started
        r2 = rotate(home, "--reencrypt")
        r2_took = time.monotonic() - started - r2_at
        time.sleep(max(0.0, DURATION - (time.monotonic() - started)))
        shared.stop.set()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "a client hung"

        # 4. With every client stopped, each key reads as its highest acknowledged version.
        final_wrong = []
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            for app, key in KEYS:
                conn.request("GET", f"/v1/secret/data/macula/{app}/{key}",
                             headers={"X-Vault-Token": token})
                resp = conn.getresponse()
                doc = json.loads(resp.read())
                assert resp.status == 200, doc
                versions = shared.acked[(app, key)]
                top = max(versions)
                got = (doc["data"]["metadata"]["version"], doc["data"]["data"]["value"])
                if got != (top, versions[top]):
                    final_wrong.append(f"{app}/{key}: final read {got}, expected "
                                       f"{(top, versions[top])}")
        finally:
            conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    # 2. Every read's (version, value) is what the write of that version sent. A read
    # whose value is a *later* version's, labelled with an earlier version number, is
    # the known race in App._read (see test_read_consistency.py): counted apart.
    mislabeled = []
    for where, version, got, cid in shared.reads:
        acked = shared.acked[where]
        if acked.get(version) == got:
            continue
        later = [v for v, value in acked.items() if value == got]
        text = (f"client {cid} read {where} {got!r} as version {version}; version "
                f"{version} is {acked.get(version)!r}, the value is version {later}")
        if later and min(later) > version:
            mislabeled.append(text)
        else:
            shared.wrong.append(text)

    reads = sum(c.reads for c in clients)
    writes = sum(c.writes for c in clients)
    lat = sorted(x for c in clients for x in c.latencies)
    p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0
    audit = verify(str(home / "audit-server.log"))
    summary = (f"load: {CLIENTS} clients, {elapsed:.1f} s: {reads} reads "
               f"({reads / elapsed:.0f}/s), "
               f"{writes} writes ({writes / elapsed:.0f}/s), total {(reads + writes) / elapsed:.0f}"
               f" req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; rotate-master at {r1_at:.1f} s "
               f"({r1_took:.2f} s), --reencrypt at {r2_at:.1f} s ({r2_took:.2f} s); "
               f"{len(shared.errors)} errors, {len(shared.wrong) + len(final_wrong)} wrong "
               f"values, {len(mislabeled)} reads with a later version's value under an "
               f"earlier version number; audit-server.log {audit.lines} lines, chain ok={audit.ok}")
    print("\n" + summary)
    with open(tmp_path.parent / "load-summary.txt", "a", encoding="utf-8") as f:
        f.write(summary + "\n")

    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert "data keys replaced" in r2.stderr
    assert shared.errors == [], shared.errors[:10]
    assert shared.wrong == [] and final_wrong == [], (shared.wrong + final_wrong)[:10]
    assert reads > 1000 and writes > 200, summary
    # Both rotations took effect: the store opens only with a third key now.
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.store.master_key_id() != first_key_id
        for (app, key), versions in shared.acked.items():
            assert secrets.get(app, key) == versions[max(versions)]
    # Every request was audited, and the chain is whole.
    assert audit.ok
    assert audit.lines >= reads + writes + len(KEYS)
    if mislabeled:
        # Not strict: how often the race is hit depends on timing. The deterministic
        # strict xfail is test_read_consistency.py.
        pytest.xfail(f"known bug, App._read: {len(mislabeled)} reads sent a later version's "
                     f"value with an earlier version's metadata, e.g. {mislabeled[0]}")
