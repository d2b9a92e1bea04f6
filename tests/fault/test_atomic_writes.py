"""A write killed half-way leaves either the whole old file or the whole new one.

``macula-secrets encrypt -i`` and ``set`` run as real processes on files of a
few megabytes and get SIGKILL at random moments, most of them just after the
temporary file appears next to the target (that is, while the new content is
being written, fsynced or renamed). After every kill the target must be the
old file byte for byte, or a complete new file that decrypts to the expected
content: never a truncated mix (sops issue 484 lost a file this way).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from macula_secrets.keys import age
from macula_secrets.sops.document import decrypt_bytes
from macula_secrets.sops.keygroups import IdentityList
from tests.cli._support import MACULA_BIN, TEST_KEY

KILLS = 6


def _identities() -> IdentityList:
    return IdentityList(age.parse_identities(TEST_KEY.secret, source="test"))


def _wait_for_temp(proc: subprocess.Popen[bytes], prefix: str, folder: Path) -> bool:
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if any(name.startswith(prefix) for name in os.listdir(folder)):
            return True
        time.sleep(0.0002)
    return False


def _write_window(argv: list[str], target: Path, env: dict[str, str]) -> float:
    """How long the temporary file exists: from its creation to the rename."""
    prefix = f".{target.name}.tmp"
    proc = subprocess.Popen([MACULA_BIN, *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _wait_for_temp(proc, prefix, target.parent)
    start = time.monotonic()
    while any(name.startswith(prefix) for name in os.listdir(target.parent)):
        time.sleep(0.0002)
    window = time.monotonic() - start
    assert proc.wait(timeout=30) == 0
    return max(window, 0.002)


def _kill_at_random(
    argv: list[str], target: Path, env: dict[str, str], rng: random.Random, window: float
) -> None:
    """Run the command and SIGKILL it: usually while its temporary file is being written."""
    prefix = f".{target.name}.tmp"
    proc = subprocess.Popen([MACULA_BIN, *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        kind = rng.random()
        if kind < 0.2:
            time.sleep(rng.uniform(0.0, 0.3))  # anywhere in the run
        else:
            _wait_for_temp(proc, prefix, target.parent)
            # While the new content is written and fsynced, or around the rename.
            time.sleep(window * rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # A killed process cannot clean up its temporary file (it is never the
    # target); the next write to the same file removes it.
    leftovers = list(target.parent.glob(prefix + "*"))
    if leftovers:
        from macula_secrets._fs import atomic_write

        atomic_write(target, target.read_bytes())
        assert not list(target.parent.glob(prefix + "*")), leftovers


@pytest.fixture
def env(age_key_file: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["SOPS_AGE_KEY_FILE"] = str(age_key_file)
    return e


def test_encrypt_in_place_killed(tmp_path: Path, env: dict[str, str]) -> None:
    rng = random.Random(484)
    plain = os.urandom(2 * 1024 * 1024)
    target = tmp_path / "payload.bin"
    argv = ["encrypt", "-i", "--age", TEST_KEY.public, str(target)]
    target.write_bytes(plain)
    window = _write_window(argv, target, env)
    outcomes = {"old": 0, "new": 0}
    for n in range(3 * KILLS):
        if n >= KILLS and outcomes["old"] and outcomes["new"]:
            break
        target.write_bytes(plain)
        _kill_at_random(argv, target, env, rng, window)
        data = target.read_bytes()
        if data == plain:
            outcomes["old"] += 1
            window *= 1.3  # aim later next time: both outcomes should occur
            continue
        doc = decrypt_bytes(data, format="binary", unwrapper=_identities(), name="payload.bin")
        assert doc.plaintext() == plain
        outcomes["new"] += 1
        window /= 1.3
    assert outcomes["old"] and outcomes["new"], outcomes


def test_set_killed(tmp_path: Path, env: dict[str, str]) -> None:
    rng = random.Random(1480)
    big = base64.b64encode(os.urandom(1536 * 1024)).decode()
    target = tmp_path / "secrets.json"
    target.write_text(json.dumps({"small": "v-start", "big": big}))
    proc = subprocess.run([MACULA_BIN, "encrypt", "-i", "--age", TEST_KEY.public, str(target)],
                          env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    window = _write_window(["set", str(target), '["small"]', '"v-0"'], target, env)
    outcomes = {"old": 0, "new": 0}
    for i in range(1, 3 * KILLS + 1):
        if i > KILLS and outcomes["old"] and outcomes["new"]:
            break
        before = target.read_bytes()
        _kill_at_random(["set", str(target), '["small"]', f'"v-{i}"'], target, env, rng, window)
        data = target.read_bytes()
        if data == before:
            outcomes["old"] += 1
            window *= 1.3
            continue
        doc = decrypt_bytes(data, format="json", unwrapper=_identities(), name="secrets.json")
        branch = doc.branches[0]
        assert branch.get("small") == f"v-{i}"
        assert branch.get("big") == big
        outcomes["new"] += 1
        window /= 1.3
    assert outcomes["old"] and outcomes["new"], outcomes
