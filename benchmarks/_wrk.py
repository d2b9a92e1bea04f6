"""Run wrk (HTTP load, keep-alive) and read its figures: requests/s and latency percentiles.

    from _wrk import run_wrk
    result = run_wrk(url, headers={"X-Vault-Token": token}, threads=1, connections=8,
                     seconds=10)
    result.rps, result.p50, result.p99, result.errors

wrk is a C program (Debian: ``apt install wrk``), so the load generator
costs little CPU beside the servers it measures on a 2-core machine; a
Python load tool would measure itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["WrkResult", "run_wrk", "wrk_binary"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50: float  # seconds
    p99: float
    requests: int
    errors: int  # socket errors and non-2xx/3xx responses


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, *, headers: dict[str, str] | None = None, threads: int = 1,
            connections: int = 8, seconds: float = 10, insecure: bool = True) -> WrkResult:
    """Run wrk against ``url`` (TLS certificates are not checked by wrk)."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed: apt install wrk")
    args = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return WrkResult(rps, p50, p99, total, errors)
