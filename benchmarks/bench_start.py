"""Start to serving: ``macula-secrets serve``, the ASGI servers themselves, and OpenBao.

    .venv/bin/python benchmarks/bench_start.py                 # 9 starts each, a table
    .venv/bin/python benchmarks/bench_start.py --markdown
    .venv/bin/python benchmarks/bench_start.py --servers-python /tmp/sv/bin/python

Issue 6 asks for a start no slower than ``bao server -dev``'s, on a
production ASGI server (uvicorn, granian or hypercorn). This script shows
how much of that the servers take before any app code runs: each one
serves ``_hello_asgi.app`` (200 ``{}``), started through its own command
line as its users start it, beside our server (``macula-secrets serve
--tls-disable`` on a home holding one secret), a framework-free floor
(``_floor_server.py``: the interpreter plus the imports any TLS server with
AES-GCM and SQLite on asyncio/uvloop needs, answering with httptools), and
``bao server -dev`` (in memory).

Every start is a fresh process, timed from ``Popen`` until ``GET
/v1/sys/health`` answers 200 (polled every 2 ms); the programs alternate
start by start, ``--starts`` rounds, after one warm-up start each (which
writes ``.pyc`` files). granian and hypercorn are not dependencies of the
project: give ``--servers-python`` an interpreter that has them (any missing
server is left out and said so); uvicorn runs from ``--servers-python`` too.
Medians and minimums move +-20% between runs on a shared 2-core machine:
compare within one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _timing import note
from bench_server import (
    HOST,
    _cli,
    _env,
    _wait_serving,
    free_port,
    our_command,
    start_bao_timed,
    stop_process,
)

HERE = Path(__file__).resolve().parent


def _has(python: str, module: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    return subprocess.run([python, "-c", f"import {module}"],
                          check=False, capture_output=True).returncode == 0


def _bin(python: str, name: str) -> list[str]:
    script = Path(python).with_name(name)
    return [str(script)] if script.exists() else [python, "-m", name]


def commands(python: str, home: Path) -> dict[str, Callable[[int], list[str]]]:
    """Program name -> its command line for a port (those that can run here)."""
    found: dict[str, Callable[[int], list[str]]] = {
        "macula-secrets serve": lambda port: [
            *our_command(), "serve", "--home", str(home), "--address", f"{HOST}:{port}",
            "--tls-disable"],
    }
    if _has(python, "uvicorn"):
        found["uvicorn (empty app)"] = lambda port: [
            *_bin(python, "uvicorn"), "_hello_asgi:app", "--host", HOST, "--port", str(port),
            "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
    else:
        note("uvicorn is not installed for --servers-python: left out")
    if _has(python, "granian"):
        found["granian (empty app)"] = lambda port: [
            *_bin(python, "granian"), "--interface", "asgi", "--host", HOST, "--port",
            str(port), "--workers", "1", "--no-ws", "--log-level", "warning",
            "_hello_asgi:app"]
    else:
        note("granian is not installed for --servers-python: left out")
    if _has(python, "hypercorn"):
        found["hypercorn (empty app)"] = lambda port: [
            *_bin(python, "hypercorn"), "--bind", f"{HOST}:{port}", "_hello_asgi:app"]
    else:
        note("hypercorn is not installed for --servers-python: left out")
    found["python floor (no framework)"] = lambda port: [
        python, str(HERE / "_floor_server.py"), str(port)]
    return found


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=9, help="starts per program (default 9)")
    ap.add_argument("--servers-python", default=sys.executable,
                    help="interpreter whose uvicorn/granian/hypercorn are timed")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        home = Path(tmp) / "home"
        _cli(home, "put", "bench", "key_00042", "a-value-to-load")
        programs = commands(args.servers_python, home)

        def run(name: str) -> float:
            port = free_port()
            t0 = time.perf_counter()
            env = _env()
            env["PYTHONPATH"] = str(HERE)
            proc = subprocess.Popen(programs[name](port), env=env, cwd=HERE,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                return _wait_serving(f"http://{HOST}:{port}", proc, t0)
            except RuntimeError as exc:
                raise RuntimeError(f"{name}: {exc}") from None
            finally:
                stop_process(proc)

        def bao() -> float:
            with tempfile.TemporaryDirectory(prefix="bench-bao-home-") as bao_home:
                return start_bao_timed(Path(bao_home))

        times: dict[str, list[float]] = {name: [] for name in programs}
        times["bao server -dev"] = []
        note(f"{args.starts} starts of each of {len(times)} programs, alternating")
        for name in programs:   # warm-up: .pyc files written, caches filled
            run(name)
        bao()
        for _ in range(args.starts):
            for name in programs:
                times[name].append(run(name))
            times["bao server -dev"].append(bao())

    base = statistics.median(times["bao server -dev"])
    rows = [(name, statistics.median(xs), min(xs)) for name, xs in times.items()]
    if args.markdown:
        print("| program | median | min | median / OpenBao's |")
        print("|---|---|---|---|")
        for name, med, low in rows:
            print(f"| {name} | {med * 1e3:.0f} ms | {low * 1e3:.0f} ms | {med / base:.2f}x |")
    else:
        width = max(len(name) for name, _, _ in rows)
        print(f"{'program':{width}}  {'median':>8}  {'min':>8}  vs OpenBao")
        for name, med, low in rows:
            print(f"{name:{width}}  {med * 1e3:6.0f} ms  {low * 1e3:6.0f} ms  {med / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
