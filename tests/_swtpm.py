"""Start and stop a software TPM 2.0 (swtpm) on 127.0.0.1, for tests.

    from tests._swtpm import start_swtpm

    with start_swtpm() as tpm:               # a fresh TPM with its own state folder
        TpmSealer(tcti=tpm.tcti).seal(key)   # tpm.tcti == "swtpm:host=127.0.0.1,port=P"

Each simulator gets a private temporary state folder, so two of them are two
different TPMs (different seeds, different primary keys). The command port P
and control port P+1 are free ports; the simulator is started already
initialised (``not-need-init,startup-clear``), polled with
``tpm2_getrandom`` until it answers, and terminated (then killed) when the
``with`` block ends. Needs ``swtpm`` and ``tpm2-tools`` (scripts/test
installs both).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
TOOLS = ("swtpm", "tpm2_getrandom", "tpm2_createprimary", "tpm2_create", "tpm2_load",
         "tpm2_unseal", "tpm2_createpolicy", "tpm2_flushcontext", "tpm2_pcrextend",
         "tpm2_changeauth")


class SwtpmError(RuntimeError):
    """The simulator did not start or did not answer."""


@dataclass
class Swtpm:
    """A running swtpm: its TCTI string for tpm2-tools' ``-T``, ports and state folder."""

    tcti: str
    port: int
    state_dir: Path
    process: subprocess.Popen[bytes]

    def run(self, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """Run a tpm2-tools program against this TPM (``-T`` is added)."""
        return subprocess.run([*args, "-T", self.tcti], input=input, capture_output=True,
                              timeout=60, check=False)


def missing_tools() -> list[str]:
    """The programs this helper and the TPM tests need that are not on PATH."""
    return [name for name in TOOLS if shutil.which(name) is None]


def _free_port_pair() -> int:
    """A port P on 127.0.0.1 such that P and P+1 are both free right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise SwtpmError("no two adjacent free TCP ports on 127.0.0.1")


@contextlib.contextmanager
def start_swtpm(timeout: float = 30.0) -> Iterator[Swtpm]:
    """Run a fresh swtpm until the ``with`` block ends; yields a :class:`Swtpm`."""
    missing = missing_tools()
    if missing:
        raise SwtpmError(f"not installed: {', '.join(missing)} (run scripts/test, "
                         "which apt-installs swtpm and tpm2-tools)")
    with tempfile.TemporaryDirectory(prefix="swtpm-") as folder:
        state = Path(folder) / "state"
        state.mkdir(mode=0o700)
        log = Path(folder) / "swtpm.log"
        last_error = ""
        for _attempt in range(3):  # a port may be taken between choosing and binding it
            port = _free_port_pair()
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    ["swtpm", "socket", "--tpm2",
                     "--server", f"type=tcp,port={port},bindaddr={HOST}",
                     "--ctrl", f"type=tcp,port={port + 1},bindaddr={HOST}",
                     "--tpmstate", f"dir={state}",
                     "--flags", "not-need-init,startup-clear"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            tpm = Swtpm(f"swtpm:host={HOST},port={port}", port, state, process)
            try:
                last_error = _wait_until_ready(tpm, timeout)
                if not last_error:
                    yield tpm
                    return
            finally:
                _stop(process)
        raise SwtpmError(f"swtpm did not answer: {last_error}\n{log.read_text(errors='replace')}")


def _wait_until_ready(tpm: Swtpm, timeout: float) -> str:
    """Poll with tpm2_getrandom; "" once it answers, else the last error."""
    deadline = time.monotonic() + timeout
    error = "not polled"
    while time.monotonic() < deadline:
        if tpm.process.poll() is not None:
            return f"swtpm exited with status {tpm.process.returncode}"
        result = tpm.run("tpm2_getrandom", "8")
        if result.returncode == 0 and len(result.stdout) == 8:
            return ""
        error = result.stderr.decode(errors="replace").strip()
        time.sleep(0.05)
    return error


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
