"""Helpers shared by the black-box CLI tests and the fault tests.

``run_cli`` runs ``macula_secrets.cli.main`` in this process with its own
stdin/stdout/stderr (fast: no interpreter start); ``run_proc`` runs the real
console script. ``Sops`` wraps the real Go sops binary. ``normalize`` turns an
encrypted file into text that is equal for two files that differ only in
random bytes (IVs, ciphertext, wrapped keys, timestamps), so our output can
be compared with sops's byte for byte.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET, run_sops

MACULA_BIN = str(Path(sys.executable).parent / "macula-secrets")

#: A recognisable secret planted in test files; it must never reach an error message.
CANARY = "s3cr3t-CANARY-7f3a9c"

EXTENSIONS = {"yaml": "yaml", "json": "json", "dotenv": "env", "ini": "ini", "binary": "bin"}


@dataclass(frozen=True)
class Result:
    """What one command did: exit status, stdout bytes, stderr text."""

    rc: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def assert_ok(self) -> Result:
        assert self.rc == 0, f"exit {self.rc}: {self.err}"
        return self

    def assert_one_error(self, rc: int = 1, *, canary: str = CANARY) -> str:
        """Exactly one ``macula: error:`` line (plus an optional hint), nothing on stdout."""
        assert self.rc == rc, f"expected exit {rc}, got {self.rc}: {self.err!r}"
        assert self.out == b"", f"stdout not empty: {self.out[:200]!r}"
        assert "Traceback" not in self.err
        lines = self.err.splitlines()
        assert lines, "stderr is empty"
        assert lines[0].startswith("macula: error: "), self.err
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("macula: hint: ")), (
            self.err
        )
        assert canary not in self.err
        assert TEST_AGE_SECRET not in self.err
        assert "AGE-SECRET-KEY" not in self.err
        return lines[0]


class _Buffer(io.BytesIO):
    """A BytesIO that survives its TextIOWrapper being closed."""

    def close(self) -> None:
        pass


def run_cli(
    *args: str | os.PathLike[str],
    input: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``macula-secrets ARGS`` in this process.

    ``env`` entries are set for the duration of the call (a value of ``""``
    removes the variable); ``cwd`` is the working directory during the call.
    """
    from macula_secrets.cli import main

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved = sys.stdin, sys.stdout, sys.stderr
    out = _Buffer()
    err = _Buffer()
    sys.stdin = io.TextIOWrapper(_Buffer(input), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    try:
        for k, v in (env or {}).items():
            if v == "":
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if cwd is not None:
            os.chdir(cwd)
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(rc, out.getvalue(), err.getvalue().decode("utf-8", "replace"))


def run_proc(
    *args: str | os.PathLike[str],
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
) -> Result:
    """Run the real ``macula-secrets`` console script in a subprocess."""
    proc = subprocess.run(
        [MACULA_BIN, *map(str, args)],
        input=input or b"",
        capture_output=True,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


class Sops:
    """The real Go sops with a fixed environment."""

    def __init__(self, binary: str, env: dict[str, str]) -> None:
        self.binary = binary
        self.env = env

    def __call__(
        self,
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        cwd: Path | None = None,
        keys: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        e = dict(self.env)
        if keys is not None:
            e["SOPS_AGE_KEY_FILE"] = str(keys)
        e.update(env or {})
        return run_sops(self.binary, *map(str, args), env=e, input=input, cwd=cwd)

    def ok(self, *args: str | os.PathLike[str], **kw: object) -> bytes:
        proc = self(*args, **kw)  # type: ignore[arg-type]
        assert proc.returncode == 0, (args, proc.stderr.decode())
        return proc.stdout


@dataclass(frozen=True)
class AgeKey:
    public: str
    secret: str


def key_file(folder: Path, *keys: AgeKey, name: str = "keys.txt") -> Path:
    """Write an identities file holding ``keys`` (mode 0600)."""
    path = folder / name
    path.write_text("".join(f"# public key: {k.public}\n{k.secret}\n" for k in keys))
    path.chmod(0o600)
    return path


TEST_KEY = AgeKey(TEST_AGE_PUBLIC, TEST_AGE_SECRET)

# -- comparing encrypted files -----------------------------------------------------------

_ENC_RE = re.compile(r"ENC\[AES256_GCM,data:([^,]*),iv:([^,]*),tag:([^,]*),type:(\w+)\]")
_ARMOR_RE = re.compile(
    r"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S
)
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def normalize(data: bytes, fmt: str = "yaml") -> str:
    """Replace the random parts of an encrypted file with placeholders.

    Ciphertext keeps its length (it equals the plaintext's), so two files
    that normalize equal encrypt the same values, with the same types, in the
    same layout. INI metadata keys are sorted: sops 3.11 writes them in Go's
    random map order.
    """
    text = data.decode("utf-8")
    text = _ENC_RE.sub(
        lambda m: f"ENC[{len(m.group(1))},{len(m.group(2))},{len(m.group(3))},{m.group(4)}]",
        text,
    )
    text = _ARMOR_RE.sub("ARMOR", text)
    text = _TIME_RE.sub("TIME", text)
    if fmt == "ini" and "\n[sops]\n" in text:
        head, _, meta = text.partition("[sops]\n")
        # Key alignment depends on the longest key, which is the same set either way.
        text = head + "[sops]\n" + "\n".join(sorted(meta.strip("\n").split("\n"))) + "\n"
    return text


def enc_values(data: bytes) -> list[str]:
    """Every ``ENC[...]`` string in a file, in order."""
    return [m.group(0) for m in _ENC_RE.finditer(data.decode("utf-8"))]


def changed_lines(before: bytes, after: bytes) -> tuple[list[str], list[str]]:
    """The lines removed from ``before`` and added in ``after`` (a line diff)."""
    import difflib

    a = before.decode().splitlines()
    b = after.decode().splitlines()
    removed: list[str] = []
    added: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            removed += a[i1:i2]
        if tag in ("replace", "insert"):
            added += b[j1:j2]
    return removed, added


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def recipients_in(data: bytes) -> list[str]:
    """Recipients named in an encrypted file (any format), in order."""
    return re.findall(r"age1[02-9ac-hj-np-z]{58}", data.decode())
