"""Real OpenBao servers for benchmarks: a thin wrapper over ``tests/_openbao.py``.

    from _openbao import start_dev, start_raft   # benchmarks/ is the script's folder

The server-launching code lives in ``tests/_openbao.py`` so that the interop
tests and the benchmarks start OpenBao the same way. ``python
benchmarks/_openbao.py`` starts one of each and prints how long they took to serve.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from tests._openbao import (
    HOST,
    OpenBaoError,
    Server,
    binary,
    free_port,
    start_dev,
    start_raft,
)

__all__ = ["HOST", "OpenBaoError", "Server", "binary", "free_port", "start_dev", "start_raft"]


def main() -> int:
    with start_dev() as dev:
        print(f"dev  {dev.address}: " + ", ".join(
            f"{k} {v * 1000:.0f} ms" for k, v in dev.timings.items()))
    with tempfile.TemporaryDirectory(prefix="openbao-raft-") as tmp:
        for run in ("fresh", "restart"):
            with start_raft(tmp) as raft:
                raft.request("POST", "/v1/secret/data/smoke", {"data": {"value": run}})
                _, got = raft.request("GET", "/v1/secret/data/smoke")
                assert got["data"]["data"]["value"] == run
                print(f"raft {run:7s} {raft.address}: " + ", ".join(
                    f"{k} {v * 1000:.0f} ms" for k, v in raft.timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
